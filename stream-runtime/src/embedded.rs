//! The output topics on the embedded log (`ecom up`): results, late events and dead letters,
//! each a topic of its own, appended durably before the commit's checkpoints are written.
//! The embedded log has no record headers, so a dead letter is a JSON envelope:
//! `{"code", "message", "partition", "offset", "payload"}` (the payload as a string when it is
//! UTF-8, else its bytes as an array).

use event_log::embedded::EmbeddedLog;
use event_log::{EventLog, Record};

use crate::sink::{Commit, ResultLog, SinkError, Stream, encode};

/// The three output topics of the embedded log.
#[derive(Clone)]
pub struct EmbeddedResultLog {
    pub results: EmbeddedLog,
    pub late: EmbeddedLog,
    pub dead_letters: EmbeddedLog,
}

impl ResultLog for EmbeddedResultLog {
    async fn publish(&self, commit: &Commit) -> Result<(), SinkError> {
        let (mut results, mut late, mut dead) = (Vec::new(), Vec::new(), Vec::new());
        for record in encode(commit) {
            match record.stream {
                Stream::Results => results.push(Record::new(record.key, record.payload)),
                Stream::Late => late.push(Record::new(record.key, record.payload)),
                Stream::DeadLetters => {
                    let header = |name: &str| {
                        record
                            .headers
                            .iter()
                            .find(|(k, _)| *k == name)
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default()
                    };
                    let payload = match std::str::from_utf8(&record.payload) {
                        Ok(text) => serde_json::Value::from(text),
                        Err(_) => serde_json::Value::from(record.payload.clone()),
                    };
                    let envelope = serde_json::json!({
                        "code": header("ecom-error-code"),
                        "message": header("ecom-error-message"),
                        "partition": header("ecom-source-partition").parse::<u32>().ok(),
                        "offset": header("ecom-source-offset").parse::<u64>().ok(),
                        "payload": payload,
                    });
                    dead.push(Record::new(
                        record.key,
                        serde_json::to_vec(&envelope).unwrap_or_default(),
                    ));
                }
            }
        }
        let append = |log: &EmbeddedLog, records: Vec<Record>| {
            let log = log.clone();
            async move {
                if records.is_empty() {
                    return Ok(());
                }
                log.append(records).await
            }
        };
        let (a, b, c) = tokio::join!(
            append(&self.results, results),
            append(&self.late, late),
            append(&self.dead_letters, dead),
        );
        a.and(b).and(c).map_err(|e| SinkError {
            sink: "event-log",
            message: e.to_string(),
        })
    }
}
