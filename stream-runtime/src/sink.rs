//! Where the engine's output goes, and the pipeline that stores it before its checkpoint.
//!
//! A [`Commit`] is everything the worker emitted since the previous one, plus the checkpoints
//! of the partitions that moved. The pipeline handles commits one at a time, in order:
//! results to the [`ResultStore`] and every record to the [`ResultLog`] (concurrently), and
//! only once both acknowledged, the checkpoints. A checkpoint therefore never covers output
//! that is not stored: that is what makes replay from it exact.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use result_store::{CheckpointStore, ResultStore, StoreError, Written};
use stream_engine::{Checkpoint, LateEvent, WindowResult};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::{Metrics, SinkLabel};

/// A record of the input that is not an event, on its way to the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub partition: u32,
    pub offset: u64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    /// A [`stream_engine::RejectReason::code`], or `empty_record` for a record without a value.
    pub code: &'static str,
    pub message: String,
}

/// One unit of output: stored and published before its checkpoints.
#[derive(Debug, Default)]
pub struct Commit {
    pub results: Vec<WindowResult>,
    /// When each result fired, for the result-latency metric.
    pub fired_at: Vec<Instant>,
    pub late: Vec<(u32, LateEvent)>,
    pub dead: Vec<DeadLetter>,
    pub checkpoints: Vec<(u32, Checkpoint)>,
    /// Told once the commit is stored (dropped unsent if the pipeline failed).
    pub done: Option<oneshot::Sender<()>>,
}

impl Commit {
    pub fn is_empty(&self) -> bool {
        self.results.is_empty()
            && self.late.is_empty()
            && self.dead.is_empty()
            && self.checkpoints.is_empty()
    }
}

/// A checkpoint stored: the partition may commit its consumer offset to `resume_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub partition: u32,
    pub resume_offset: u64,
}

/// A sink gave up: a permanent error, or a transient one that outlasted the retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{sink}: {message}")]
pub struct SinkError {
    pub sink: &'static str,
    pub message: String,
}

impl From<StoreError> for SinkError {
    fn from(e: StoreError) -> Self {
        SinkError {
            sink: e.store,
            message: e.message,
        }
    }
}

/// The published streams: results, late events and dead letters. Kafka topics in production,
/// topics of the embedded log in `ecom up`.
pub trait ResultLog: Send + Sync + 'static {
    fn publish(&self, commit: &Commit) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// Which published stream a record goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Results,
    Late,
    DeadLetters,
}

/// A record of a commit, encoded for a log.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub stream: Stream,
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

/// The records of a commit as every [`ResultLog`] publishes them: results keyed
/// `product_id|window_start` (the contract JSON), late events keyed by `product_id` (with their
/// source partition), dead letters unchanged (with the reason, source partition and offset).
pub fn encode(commit: &Commit) -> Vec<Encoded> {
    let mut out = Vec::with_capacity(commit.results.len() + commit.late.len() + commit.dead.len());
    for result in &commit.results {
        let mut key = result.product_id.to_string();
        key.push('|');
        stream_engine::core::time::write_rfc3339_ms(result.window_start_ms, &mut key);
        out.push(Encoded {
            stream: Stream::Results,
            key: key.into_bytes(),
            payload: serde_json::to_vec(result).unwrap_or_default(),
            headers: Vec::new(),
        });
    }
    for (partition, late) in &commit.late {
        out.push(Encoded {
            stream: Stream::Late,
            key: late.product_id.as_bytes().to_vec(),
            payload: serde_json::to_vec(late).unwrap_or_default(),
            headers: vec![("ecom-source-partition", partition.to_string())],
        });
    }
    for dead in &commit.dead {
        out.push(Encoded {
            stream: Stream::DeadLetters,
            key: dead.key.clone().unwrap_or_default(),
            payload: dead.payload.clone(),
            headers: vec![
                ("ecom-error-code", dead.code.to_owned()),
                ("ecom-error-message", dead.message.clone()),
                ("ecom-source-partition", dead.partition.to_string()),
                ("ecom-source-offset", dead.offset.to_string()),
            ],
        });
    }
    out
}

/// Runs commits through the sinks in order until the sender is dropped or a sink gives up.
/// Every stored checkpoint is reported on `stored`.
pub async fn run_pipeline<S: ResultStore + CheckpointStore, L: ResultLog>(
    store: Arc<S>,
    log: Arc<L>,
    mut commits: mpsc::Receiver<Commit>,
    stored: std::sync::mpsc::Sender<Stored>,
    metrics: Metrics,
) -> Result<(), SinkError> {
    while let Some(commit) = commits.recv().await {
        let started = Instant::now();
        let store_results = async {
            if commit.results.is_empty() {
                return Ok(0);
            }
            let superseded = store.put_results(&commit.results).await?;
            observe(&metrics, "store", started);
            Ok::<_, SinkError>(superseded)
        };
        let publish = async {
            log.publish(&commit).await?;
            observe(&metrics, "log", started);
            Ok::<_, SinkError>(())
        };
        let (superseded, published) = tokio::join!(store_results, publish);
        metrics.superseded.inc_by(superseded? as u64);
        published?;
        let now = Instant::now();
        for fired in &commit.fired_at {
            metrics
                .result_latency
                .observe(now.duration_since(*fired).as_secs_f64());
        }

        let started = Instant::now();
        let saves = commit.checkpoints.iter().map(|(partition, checkpoint)| {
            let store = &store;
            async move {
                let written = store.save_checkpoint(*partition, checkpoint).await?;
                if written == Written::Superseded {
                    tracing::warn!(
                        partition,
                        "a further checkpoint is stored already (another instance owns or owned the partition)"
                    );
                }
                Ok::<_, SinkError>((written == Written::Stored).then_some(Stored {
                    partition: *partition,
                    resume_offset: checkpoint.resume_offset,
                }))
            }
        });
        for saved in futures_util::future::join_all(saves).await {
            if let Some(saved) = saved? {
                // The receiver is gone only when the worker stopped; nothing is lost then.
                let _ = stored.send(saved);
            }
        }
        if !commit.checkpoints.is_empty() {
            observe(&metrics, "checkpoint", started);
        }
        if let Some(done) = commit.done {
            let _ = done.send(());
        }
    }
    Ok(())
}

fn observe(metrics: &Metrics, sink: &'static str, started: Instant) {
    metrics
        .sink_duration
        .get_or_create(&SinkLabel { sink })
        .observe(started.elapsed().as_secs_f64());
}

/// The ordering rules of the pipeline, with a store and a log that record what they were asked
/// and fail where told (the real stores are tested against their servers in
/// `result-store/tests/`, the whole runtime in `tests/pipeline/`).
#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use prometheus_client::registry::Registry;

    use super::*;

    /// What the sinks saw, in order: `results`, `publish`, `checkpoint <partition>`.
    #[derive(Default)]
    struct Journal {
        seen: Mutex<Vec<String>>,
        fail_store: bool,
        fail_publish: bool,
        superseded: bool,
    }

    impl Journal {
        fn note(&self, what: String) {
            self.seen.lock().unwrap().push(what);
        }

        fn seen(&self) -> Vec<String> {
            self.seen.lock().unwrap().clone()
        }
    }

    fn failure(store: &'static str) -> StoreError {
        StoreError {
            store,
            message: "down".into(),
        }
    }

    impl ResultStore for Journal {
        async fn put_results(&self, results: &[WindowResult]) -> result_store::Result<usize> {
            // The log is slower: the pipeline must wait for both before a checkpoint.
            tokio::task::yield_now().await;
            self.note(format!("results {}", results.len()));
            if self.fail_store {
                return Err(failure("store"));
            }
            Ok(0)
        }
    }

    impl CheckpointStore for Journal {
        async fn load_checkpoint(&self, _: u32) -> result_store::Result<Option<Checkpoint>> {
            Ok(None)
        }

        async fn save_checkpoint(
            &self,
            partition: u32,
            checkpoint: &Checkpoint,
        ) -> result_store::Result<Written> {
            self.note(format!(
                "checkpoint {partition} at {}",
                checkpoint.resume_offset
            ));
            Ok(if self.superseded {
                Written::Superseded
            } else {
                Written::Stored
            })
        }
    }

    impl ResultLog for Journal {
        async fn publish(&self, commit: &Commit) -> Result<(), SinkError> {
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            self.note(format!("publish {}", encode(commit).len()));
            if self.fail_publish {
                return Err(SinkError {
                    sink: "log",
                    message: "down".into(),
                });
            }
            Ok(())
        }
    }

    fn commit(products: &[&str], resume_offset: u64) -> Commit {
        Commit {
            results: products
                .iter()
                .map(|p| WindowResult {
                    product_id: (*p).into(),
                    window_start_ms: 0,
                    unique_users: 1,
                    events: 1,
                    approximate: false,
                })
                .collect(),
            checkpoints: vec![(
                3,
                Checkpoint {
                    resume_offset,
                    ..Checkpoint::initial()
                },
            )],
            ..Commit::default()
        }
    }

    /// Runs `commits` through a pipeline over `journal`: its outcome and what it reported stored.
    async fn run(
        journal: Journal,
        commits: Vec<Commit>,
    ) -> (Arc<Journal>, Result<(), SinkError>, Vec<Stored>) {
        let journal = Arc::new(journal);
        let (tx, rx) = mpsc::channel(commits.len().max(1));
        for c in commits {
            tx.send(c).await.unwrap();
        }
        drop(tx);
        let (stored_tx, stored_rx) = std::sync::mpsc::channel();
        let metrics = Metrics::register(&mut Registry::default());
        let outcome = run_pipeline(journal.clone(), journal.clone(), rx, stored_tx, metrics).await;
        (journal, outcome, stored_rx.try_iter().collect())
    }

    #[tokio::test]
    async fn a_checkpoint_is_saved_only_once_its_results_are_stored_and_published() {
        let (journal, outcome, stored) = run(
            Journal::default(),
            vec![commit(&["a", "b"], 10), commit(&["c"], 20)],
        )
        .await;
        outcome.unwrap();
        assert_eq!(
            journal.seen(),
            [
                "results 2",
                "publish 2",
                "checkpoint 3 at 10",
                "results 1",
                "publish 1",
                "checkpoint 3 at 20"
            ]
        );
        assert_eq!(
            stored,
            [
                Stored {
                    partition: 3,
                    resume_offset: 10
                },
                Stored {
                    partition: 3,
                    resume_offset: 20
                }
            ]
        );
    }

    #[tokio::test]
    async fn a_store_that_fails_stops_the_pipeline_before_any_checkpoint() {
        let journal = Journal {
            fail_store: true,
            ..Journal::default()
        };
        let (journal, outcome, stored) =
            run(journal, vec![commit(&["a"], 10), commit(&["b"], 20)]).await;
        assert_eq!(outcome.unwrap_err().sink, "store");
        assert!(
            !journal.seen().iter().any(|s| s.starts_with("checkpoint")),
            "{:?}",
            journal.seen()
        );
        assert!(stored.is_empty());
    }

    #[tokio::test]
    async fn a_log_that_fails_stops_the_pipeline_before_any_checkpoint() {
        let journal = Journal {
            fail_publish: true,
            ..Journal::default()
        };
        let (journal, outcome, stored) = run(journal, vec![commit(&["a"], 10)]).await;
        assert_eq!(outcome.unwrap_err().sink, "log");
        assert_eq!(journal.seen(), ["results 1", "publish 1"]);
        assert!(stored.is_empty());
    }

    #[tokio::test]
    async fn a_superseded_checkpoint_is_not_reported_stored_and_the_pipeline_goes_on() {
        let journal = Journal {
            superseded: true,
            ..Journal::default()
        };
        let (journal, outcome, stored) =
            run(journal, vec![commit(&["a"], 10), commit(&["b"], 20)]).await;
        outcome.unwrap();
        assert_eq!(journal.seen().len(), 6, "{:?}", journal.seen());
        assert!(
            stored.is_empty(),
            "no consumer offset may follow a lost checkpoint"
        );
    }
}
