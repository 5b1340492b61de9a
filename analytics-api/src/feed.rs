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

/// Reads the results topic from its end on a thread of its own, publishing each record's value
/// (a result's JSON) to `feed`. `open` makes the reader, given the listener to report to.
pub fn tail<R, F>(open: F, feed: Feed) -> std::io::Result<Tail>
where
    R: PartitionReader,
    F: FnOnce(Arc<FixedStart>) -> Result<R, ReadError> + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("results-tail".into())
            .spawn(move || {
                let reader = match open(Arc::new(FixedStart(StartAt::End))) {
                    Ok(reader) => reader,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the results topic; the live stream stays empty");
                        return;
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
