//! `GET /api/v1/status`: what the pipeline is doing, for the dashboard and for people: each
//! part's readiness and the numbers an operator checks first, read from the parts' own
//! `/readyz` and `/metrics` (the same numbers Prometheus scrapes), with rates over the last
//! minute from the samples the gateway keeps.
//!
//! The pipeline is gateway → ingest → log → stream engine → store → analytics. The log's
//! state is what ingest says of it (ingest is ready while it can append), the store's what the
//! analytics API says (ready while it can query it).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use utoipa::ToSchema;

/// Where the parts the status reads are; `None` for a part this gateway cannot see.
#[derive(Debug, Clone, Default)]
pub struct StatusSources {
    pub ingest: Option<String>,
    pub stream_engine: Option<String>,
    pub analytics: Option<String>,
}

/// Alert thresholds shown beside the numbers (the same as the alert rules').
pub const WATERMARK_LAG_ALERT_SECONDS: f64 = 120.0;
pub const CONSUMER_LAG_ALERT_RECORDS: f64 = 100_000.0;
pub const CHECKPOINT_AGE_ALERT_SECONDS: f64 = 300.0;

/// One part of the pipeline.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Part {
    /// `gateway`, `ingest`, `log`, `stream-engine`, `store`, `analytics`.
    pub name: &'static str,
    /// `true` ready, `false` not, `null` unknown (this gateway cannot see it).
    pub ready: Option<bool>,
    /// Why it is not ready, when it says.
    pub detail: Option<String>,
    /// Its rate: events/s in for ingest and the engine, windows/s out of the engine.
    pub rate: Option<f64>,
}

/// A number and the alert threshold it is compared with.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Gauge {
    pub value: f64,
    pub threshold: Option<f64>,
}

/// The answer of `GET /api/v1/status`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Status {
    /// Gateway → ingest → log → stream engine → store → analytics.
    pub parts: Vec<Part>,
    /// Events ingest accepted over the last minute (or since the gateway started, if less).
    pub ingest_last_minute: Option<f64>,
    /// Events ingest refused, by reason, since ingest started.
    pub ingest_rejected: BTreeMap<String, f64>,
    /// Events the engine found late, since it started.
    pub late_events: Option<f64>,
    /// Records the engine refused, by reason, since it started.
    pub engine_rejected: BTreeMap<String, f64>,
    /// Per input partition: wall clock minus the watermark.
    pub watermark_lag_seconds: BTreeMap<String, Gauge>,
    /// Per input partition: records not yet committed.
    pub consumer_lag_records: BTreeMap<String, Gauge>,
    /// Per input partition: since the checkpoint was last stored.
    pub checkpoint_age_seconds: BTreeMap<String, Gauge>,
}

/// One sample of a metric family: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The samples of a Prometheus or OpenMetrics text exposition (comments and malformed lines
/// skipped).
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        let bytes = body.as_bytes();
        let mut i = 0;
        loop {
            while bytes.get(i).is_some_and(|b| *b == b',' || *b == b' ') {
                i += 1;
            }
            if *bytes.get(i)? == b'}' {
                i += 1;
                break;
            }
            let key_start = i;
            while *bytes.get(i)? != b'=' {
                i += 1;
            }
            let key = body[key_start..i].trim().to_owned();
            i += 1;
            if *bytes.get(i)? != b'"' {
                return None;
            }
            i += 1;
            let mut value = String::new();
            loop {
                match *bytes.get(i)? {
                    b'\\' => {
                        value.push(match *bytes.get(i + 1)? {
                            b'n' => '\n',
                            other => char::from(other),
                        });
                        i += 2;
                    }
                    b'"' => {
                        i += 1;
                        break;
                    }
                    _ => {
                        let c = body[i..].chars().next()?;
                        value.push(c);
                        i += c.len_utf8();
                    }
                }
            }
            labels.push((key, value));
        }
        rest = &body[i..];
    }
    let value = rest.split_whitespace().next()?.parse::<f64>().ok()?;
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

fn sum(samples: &[Sample], name: &str) -> Option<f64> {
    let mut found = samples.iter().filter(|s| s.name == name).peekable();
    found.peek()?;
    Some(found.map(|s| s.value).sum())
}

fn by_label(samples: &[Sample], name: &str, label: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for s in samples.iter().filter(|s| s.name == name) {
        if let Some(v) = s.label(label) {
            *out.entry(v.to_owned()).or_insert(0.0) += s.value;
        }
    }
    out
}

fn gauges(samples: &[Sample], name: &str, threshold: Option<f64>) -> BTreeMap<String, Gauge> {
    by_label(samples, name, "partition")
        .into_iter()
        .map(|(p, value)| (p, Gauge { value, threshold }))
        .collect()
}

/// Counters sampled over time, for rates.
#[derive(Default)]
struct History {
    samples: VecDeque<(Instant, Counters)>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    ingested: Option<f64>,
    engine_events: Option<f64>,
    windows: Option<f64>,
}

impl History {
    const KEEP: Duration = Duration::from_secs(70);

    fn push(&mut self, at: Instant, counters: Counters) {
        self.samples.push_back((at, counters));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| at.duration_since(*t) > Self::KEEP)
        {
            self.samples.pop_front();
        }
    }

    /// Per second over the span of the kept samples (at least 1 s of it).
    fn rate(&self, of: impl Fn(&Counters) -> Option<f64>) -> Option<f64> {
        let (t0, first) = self.samples.front()?;
        let (t1, last) = self.samples.back()?;
        let span = t1.duration_since(*t0).as_secs_f64();
        if span < 1.0 {
            return None;
        }
        // A restarted part's counter goes back: no rate across it.
        let delta = of(last)? - of(first)?;
        (delta >= 0.0).then(|| delta / span)
    }

    /// The increase over the last minute (or what is kept of it).
    fn last_minute(&self, of: impl Fn(&Counters) -> Option<f64>) -> Option<f64> {
        let (t1, last) = self.samples.back()?;
        let (_, first) = self
            .samples
            .iter()
            .find(|(t, _)| t1.duration_since(*t) <= Duration::from_secs(60))?;
        let delta = of(last)? - of(first)?;
        Some(delta.max(0.0))
    }
}

/// The route's description (the gateway answers it itself).
#[utoipa::path(
    get,
    path = "/api/v1/status",
    responses(
        (status = 200, description = "Each part of the pipeline (ready or not, its rate) and the numbers an operator checks first, at most a second old", body = Status),
    ),
    tag = "status"
)]
#[allow(dead_code)]
fn described() {}

#[derive(utoipa::OpenApi)]
#[openapi(paths(described), components(schemas(Status, Part, Gauge)))]
struct ApiDoc;

/// The description of `GET /api/v1/status`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <ApiDoc as utoipa::OpenApi>::openapi()
}

/// Reads the parts and keeps their counters' history.
pub struct StatusReader {
    sources: StatusSources,
    http: reqwest::Client,
    history: Mutex<History>,
    /// The last answer and when it was made: one read of the parts per second at most,
    /// however many dashboards ask.
    cached: tokio::sync::Mutex<Option<(Instant, Status)>>,
}

struct Read {
    ready: Option<bool>,
    detail: Option<String>,
    samples: Vec<Sample>,
}

impl StatusReader {
    pub fn new(sources: StatusSources) -> Self {
        StatusReader {
            sources,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .build()
                .unwrap_or_default(),
            history: Mutex::new(History::default()),
            cached: tokio::sync::Mutex::new(None),
        }
    }

    async fn read(&self, base: Option<&String>) -> Read {
        let Some(base) = base else {
            return Read {
                ready: None,
                detail: None,
                samples: Vec::new(),
            };
        };
        let base = base.trim_end_matches('/');
        let ready = self.http.get(format!("{base}/readyz")).send();
        let metrics = self.http.get(format!("{base}/metrics")).send();
        let (ready, metrics) = tokio::join!(ready, metrics);
        let (ready, detail) = match ready {
            Ok(r) => {
                let ok = r.status().is_success();
                let text = r.text().await.unwrap_or_default();
                (Some(ok), (!ok).then(|| text.trim().to_owned()))
            }
            Err(e) => (Some(false), Some(format!("no answer: {e}"))),
        };
        let samples = match metrics {
            Ok(r) if r.status().is_success() => parse_metrics(&r.text().await.unwrap_or_default()),
            _ => Vec::new(),
        };
        Read {
            ready,
            detail,
            samples,
        }
    }

    /// The status now (at most a second old).
    pub async fn status(&self) -> Status {
        let mut cached = self.cached.lock().await;
        if let Some((at, status)) = cached.as_ref()
            && at.elapsed() < Duration::from_secs(1)
        {
            return status.clone();
        }
        let (ingest, engine, analytics) = tokio::join!(
            self.read(self.sources.ingest.as_ref()),
            self.read(self.sources.stream_engine.as_ref()),
            self.read(self.sources.analytics.as_ref()),
        );
        let counters = Counters {
            ingested: sum(&ingest.samples, "ingest_events_accepted_total"),
            engine_events: sum(&engine.samples, "stream_events_total"),
            windows: sum(&engine.samples, "stream_windows_fired_total"),
        };
        let (ingest_rate, engine_rate, window_rate, last_minute) = {
            let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
            history.push(Instant::now(), counters);
            (
                history.rate(|c| c.ingested),
                history.rate(|c| c.engine_events),
                history.rate(|c| c.windows),
                history.last_minute(|c| c.ingested),
            )
        };
        let part = |name, read: &Read, rate| Part {
            name,
            ready: read.ready,
            detail: read.detail.clone(),
            rate,
        };
        let status = Status {
            parts: vec![
                Part {
                    name: "gateway",
                    ready: Some(true),
                    detail: None,
                    rate: None,
                },
                part("ingest", &ingest, ingest_rate),
                part("log", &ingest, None),
                part("stream-engine", &engine, engine_rate),
                part("store", &analytics, window_rate),
                part("analytics", &analytics, None),
            ],
            ingest_last_minute: last_minute,
            ingest_rejected: by_label(&ingest.samples, "ingest_events_rejected_total", "reason"),
            late_events: sum(&engine.samples, "stream_events_late_total"),
            engine_rejected: by_label(&engine.samples, "stream_events_rejected_total", "reason"),
            watermark_lag_seconds: gauges(
                &engine.samples,
                "stream_watermark_lag_seconds",
                Some(WATERMARK_LAG_ALERT_SECONDS),
            ),
            consumer_lag_records: gauges(
                &engine.samples,
                "stream_consumer_lag_records",
                Some(CONSUMER_LAG_ALERT_RECORDS),
            ),
            checkpoint_age_seconds: gauges(
                &engine.samples,
                "stream_checkpoint_age_seconds",
                Some(CHECKPOINT_AGE_ALERT_SECONDS),
            ),
        };
        *cached = Some((Instant::now(), status.clone()));
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format() {
        let text = "# HELP x y\n# TYPE stream_events counter\nstream_events_total 42\n\
            stream_watermark_lag_seconds{partition=\"0\"} 3.5\n\
            ingest_events_rejected_total{reason=\"bad \\\"json\\\"\",x=\"1\"} 2\n\
            odd{a=\"b\",} 1\n\
            not a sample\n# EOF\n";
        let samples = parse_metrics(text);
        assert_eq!(sum(&samples, "stream_events_total"), Some(42.0));
        assert_eq!(
            by_label(&samples, "stream_watermark_lag_seconds", "partition")["0"],
            3.5
        );
        assert_eq!(
            by_label(&samples, "ingest_events_rejected_total", "reason")["bad \"json\""],
            2.0
        );
        assert_eq!(sum(&samples, "odd"), Some(1.0));
        assert_eq!(sum(&samples, "missing"), None);
        assert_eq!(samples.len(), 4);
    }

    #[test]
    fn rates_over_the_kept_samples() {
        let mut h = History::default();
        let t = Instant::now();
        let c = |n: f64| Counters {
            ingested: Some(n),
            ..Counters::default()
        };
        h.push(t, c(100.0));
        assert_eq!(h.rate(|c| c.ingested), None, "one sample is no rate");
        h.push(t + Duration::from_secs(10), c(300.0));
        assert_eq!(h.rate(|c| c.ingested), Some(20.0));
        assert_eq!(h.last_minute(|c| c.ingested), Some(200.0));
        // A restart (the counter went back): no rate.
        h.push(t + Duration::from_secs(11), c(5.0));
        assert_eq!(h.rate(|c| c.ingested), None);
        // Old samples age out.
        h.push(t + Duration::from_secs(100), c(50.0));
        assert_eq!(h.samples.len(), 1);
    }
}
