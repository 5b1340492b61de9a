//! The live stream of results: a [`Feed`] that [`tail`] fills from the results topic (Kafka,
//! or the embedded log), read from its end by a reader of its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use event_log::{FixedStart, PartitionReader, ReadBatch, ReadError, StartAt};
use tokio::sync::broadcast;

/// Results a stream client may fall behind by before it is disconnected.
pub const BACKLOG: usize = 4096;

/// Window results as they are published, as their contract JSON, to every subscriber.
#[derive(Clone)]
pub struct Feed {
    tx: broadcast::Sender<Arc<str>>,
}

impl Default for Feed {
    fn default() -> Self {
        Feed::new(BACKLOG)
    }
}

impl Feed {
    pub fn new(backlog: usize) -> Self {
        Feed {
            tx: broadcast::channel(backlog.max(1)).0,
        }
    }

    pub fn publish(&self, json: Arc<str>) {
        // No subscriber: nothing to do.
        let _ = self.tx.send(json);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.tx.subscribe()
    }
}

/// A running tail; stops (and closes its reader) when dropped.
pub struct Tail {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Tail {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How long [`tail`] waits before trying again to open a reader it could not open.
pub const REOPEN_AFTER: Duration = Duration::from_secs(5);

/// Reads the results topic from its end on a thread of its own, publishing each record's value
/// (a result's JSON) to `feed`. `open` makes the reader, given the listener to report to; when
/// it fails (the topic does not exist yet because the engine has not created it, the brokers
/// are unreachable), it is called again every [`REOPEN_AFTER`] until it succeeds or the tail
/// is dropped.
pub fn tail<R, F>(open: F, feed: Feed) -> std::io::Result<Tail>
where
    R: PartitionReader,
    F: Fn(Arc<FixedStart>) -> Result<R, ReadError> + Send + 'static,
{
    tail_reopening_after(open, feed, REOPEN_AFTER)
}

fn tail_reopening_after<R, F>(open: F, feed: Feed, reopen_after: Duration) -> std::io::Result<Tail>
where
    R: PartitionReader,
    F: Fn(Arc<FixedStart>) -> Result<R, ReadError> + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("results-tail".into())
            .spawn(move || {
                let reader = loop {
                    match open(Arc::new(FixedStart(StartAt::End))) {
                        Ok(reader) => break reader,
                        Err(e) => {
                            tracing::warn!(error = %e, retry_in = ?reopen_after, "cannot read the results topic yet; the live stream waits");
                        }
                    }
                    // Sleeps in short steps, so that dropping the tail is not held up.
                    let until = std::time::Instant::now() + reopen_after;
                    while std::time::Instant::now() < until {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(20).min(reopen_after));
                    }
                };
                while !stop.load(Ordering::SeqCst) {
                    match reader.poll(1024, Duration::from_millis(100)) {
                        Ok(Some(batch)) => {
                            for (_, records) in batch.runs() {
                                for record in records {
                                    if let Some(value) = record
                                        .payload
                                        .and_then(|p| std::str::from_utf8(p).ok())
                                    {
                                        feed.publish(Arc::from(value));
                                    }
                                }
                            }
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::debug!(error = %e, "results tail read error");
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
                reader.close();
            })?
    };
    Ok(Tail {
        stop,
        thread: Some(thread),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use event_log::embedded::{EmbeddedLog, LogConfig};
    use event_log::{EventLog, Record};

    use super::*;

    /// A reader that cannot be opened at first (the topic is missing) is opened again until it
    /// can be, and what is appended afterwards reaches the feed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tail_that_cannot_open_yet_tries_again_and_then_streams() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            partitions: 1,
            ..LogConfig::default()
        };
        let log = EmbeddedLog::open(dir.path(), config).unwrap();
        let attempts = Arc::new(AtomicUsize::new(0));
        let feed = Feed::default();
        let mut live = feed.subscribe();
        let (opener, tries) = (log.clone(), attempts.clone());
        let _tail = tail_reopening_after(
            move |listener| {
                if tries.fetch_add(1, Ordering::SeqCst) < 2 {
                    return Err(ReadError("topic results does not exist".into()));
                }
                Ok(opener.reader("tail", listener))
            },
            feed,
            Duration::from_millis(50),
        )
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while attempts.load(Ordering::SeqCst) < 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "the tail never tried again"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The reader starts at the end once open: append until the feed sees a record.
        let got = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                log.append(vec![Record::new(b"p".to_vec(), b"{\"n\":1}".to_vec())])
                    .await
                    .unwrap();
                if let Ok(Ok(value)) =
                    tokio::time::timeout(Duration::from_millis(200), live.recv()).await
                {
                    break value;
                }
            }
        })
        .await
        .expect("a record appended after the tail opened reaches the feed");
        assert_eq!(&*got, "{\"n\":1}");
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
    }
}
