//! Kafka on both sides of the engine: the consumer-group source that drives a [`Worker`], and
//! the [`ResultLog`] that publishes results, late events and dead letters.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use service_common::kafka::{ReplaceableProducer, needs_new_producer};

use super::metrics::{Metrics, PartitionLabel};
use super::sink::ResultStore;
use super::sink::{Commit, ResultLog, SinkError, Stored};
use super::worker::{Record, Worker, WorkerError};

/// The topics the engine writes.
#[derive(Debug, Clone)]
pub struct OutputTopics {
    pub results: String,
    pub late: String,
    pub dead_letter: String,
}

/// Publishes to the output topics through an idempotent producer (`acks=all`), retrying
/// failed deliveries until they succeed or the retry budget is spent.
pub struct KafkaResultLog {
    topics: OutputTopics,
    producer: ReplaceableProducer,
    retry_for: Duration,
    metrics: Metrics,
}

const LOG_SINK: &str = "kafka";

impl KafkaResultLog {
    pub fn new(
        bootstrap_servers: &str,
        topics: OutputTopics,
        retry_for: Duration,
        metrics: Metrics,
    ) -> Result<Self, KafkaError> {
        let mut config = service_common::kafka::client_config(bootstrap_servers);
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "10000")
            .set("queue.buffering.max.messages", "1000000");
        Ok(KafkaResultLog {
            topics,
            producer: ReplaceableProducer::new(config)?,
            retry_for,
            metrics,
        })
    }
}

/// A record to publish, encoded.
struct Outgoing<'a> {
    topic: &'a str,
    key: Vec<u8>,
    payload: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

fn encode<'a>(topics: &'a OutputTopics, commit: &Commit) -> Vec<Outgoing<'a>> {
    let mut out = Vec::with_capacity(commit.results.len() + commit.late.len() + commit.dead.len());
    for result in &commit.results {
        let mut key = result.product_id.to_string();
        key.push('|');
        crate::core::time::write_rfc3339_ms(result.window_start_ms, &mut key);
        out.push(Outgoing {
            topic: &topics.results,
            key: key.into_bytes(),
            payload: serde_json::to_vec(result).unwrap_or_default(),
            headers: Vec::new(),
        });
    }
    for (partition, late) in &commit.late {
        out.push(Outgoing {
            topic: &topics.late,
            key: late.product_id.as_bytes().to_vec(),
            payload: serde_json::to_vec(late).unwrap_or_default(),
            headers: vec![("ecom-source-partition", partition.to_string())],
        });
    }
    for dead in &commit.dead {
        out.push(Outgoing {
            topic: &topics.dead_letter,
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

impl ResultLog for KafkaResultLog {
    async fn publish(&self, commit: &Commit) -> Result<(), SinkError> {
        let outgoing = encode(&self.topics, commit);
        let mut todo: Vec<&Outgoing<'_>> = outgoing.iter().collect();
        let mut started = Instant::now();
        let mut backoff = Duration::from_millis(50);
        loop {
            let attempted = todo.len();
            let producer = self.producer.get();
            let mut deliveries = Vec::with_capacity(todo.len());
            let mut failed = Vec::new();
            let mut last_error = None;
            for record in todo {
                let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
                for (name, value) in &record.headers {
                    headers = headers.insert(Header {
                        key: name,
                        value: Some(value.as_bytes()),
                    });
                }
                let message = FutureRecord::to(record.topic)
                    .key(&record.key[..])
                    .payload(&record.payload[..])
                    .headers(headers);
                match producer.send_result(message) {
                    Ok(delivery) => deliveries.push((record, delivery)),
                    Err((e, _)) => {
                        failed.push(record);
                        last_error = Some(e);
                    }
                }
            }
            let mut fenced = false;
            for (record, delivery) in deliveries {
                match delivery.await {
                    Ok(Ok(_)) => {}
                    Ok(Err((e, _))) => {
                        fenced |= needs_new_producer(&e);
                        failed.push(record);
                        last_error = Some(e);
                    }
                    Err(_) => failed.push(record),
                }
            }
            if fenced {
                self.producer.replace(&producer);
            }
            if failed.is_empty() {
                return Ok(());
            }
            if failed.len() < attempted {
                // Progress: the budget is for a log that delivers nothing.
                started = Instant::now();
            }
            let kind = match &last_error {
                Some(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) => "queue_full",
                _ => "unavailable",
            };
            self.metrics.sink_error(LOG_SINK, kind);
            if started.elapsed() + backoff > self.retry_for {
                return Err(SinkError {
                    sink: LOG_SINK,
                    message: format!(
                        "{} records not delivered after {:?}: {}",
                        failed.len(),
                        self.retry_for,
                        last_error.map_or_else(|| "producer dropped".to_owned(), |e| e.to_string())
                    ),
                });
            }
            tracing::warn!(records = failed.len(), kind, "retrying deliveries");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
            todo = failed;
        }
    }
}

/// Consumer settings of [`run_source`].
#[derive(Debug, Clone)]
pub struct SourceSettings {
    pub bootstrap_servers: String,
    pub topic: String,
    pub group_id: String,
    /// The group forgets a silent member after this long (its partitions move on).
    pub session_timeout: Duration,
}

/// What the consumer's callbacks share with the polling thread.
struct SourceContext<S: ResultStore> {
    topic: String,
    worker: Mutex<Worker<S>>,
    /// Bumped on every rebalance: records read before one are dropped (they are read again
    /// from the new positions).
    generation: AtomicU64,
    fatal: Mutex<Option<WorkerError>>,
    metrics: Metrics,
}

impl<S: ResultStore> SourceContext<S> {
    /// The worker, unless a panic while processing left it half-updated: then nothing more
    /// may be stored or checkpointed from it.
    fn worker(&self) -> Result<MutexGuard<'_, Worker<S>>, WorkerError> {
        self.worker.lock().map_err(|_| WorkerError::Panicked)
    }

    fn fail(&self, e: WorkerError) {
        tracing::error!(error = %e, "stream engine failed");
        self.fatal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(e);
    }

    fn partitions(&self, tpl: &TopicPartitionList) -> Vec<u32> {
        tpl.elements_for_topic(&self.topic)
            .iter()
            .filter_map(|e| u32::try_from(e.partition()).ok())
            .collect()
    }
}

impl<S: ResultStore> ClientContext for SourceContext<S> {
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        let Ok(worker) = self.worker() else {
            return;
        };
        for (&partition, stats) in &topic.partitions {
            if let Ok(partition) = u32::try_from(partition)
                && worker.owns(partition)
                && stats.consumer_lag >= 0
            {
                self.metrics
                    .consumer_lag
                    .get_or_create(&PartitionLabel { partition })
                    .set(stats.consumer_lag);
            }
        }
    }
}

impl<S: ResultStore> ConsumerContext for SourceContext<S> {
    /// Eager rebalancing: every partition is revoked, then the new set assigned. Revoked
    /// partitions are stored and checkpointed before the group moves on; assigned ones are
    /// restored and start at their checkpoint's resume offset.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let partitions = self.partitions(tpl);
        let outcome = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                match self.worker().and_then(|mut w| w.assign(&partitions)) {
                    Ok(seeks) => {
                        for (partition, resume) in seeks {
                            let offset =
                                resume.map_or(Offset::Beginning, |o| Offset::Offset(o as i64));
                            if let Err(e) =
                                tpl.set_partition_offset(&self.topic, partition as i32, offset)
                            {
                                tracing::error!(partition, error = %e, "cannot set the start offset");
                            }
                        }
                        consumer.assign(tpl)
                    }
                    Err(e) => {
                        self.fail(e);
                        consumer.unassign()
                    }
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                if let Err(e) = self.worker().and_then(|mut w| w.revoke(&partitions)) {
                    self.fail(e);
                }
                consumer.unassign()
            }
            other => {
                // Whatever the list says, this instance gives up everything it owns.
                tracing::error!(error = ?other, "rebalance failed");
                let revoked = self.worker().and_then(|mut w| {
                    let owned = w.owned();
                    w.revoke(&owned)
                });
                if let Err(e) = revoked {
                    self.fail(e);
                }
                consumer.unassign()
            }
        };
        if let Err(e) = outcome {
            tracing::error!(error = %e, "cannot change the assignment");
        }
    }
}

/// Largest number of records handed to the worker at once.
const MAX_BATCH: usize = 4096;

/// Records read together, with the rebalance generation they were read in.
struct Batch<'a> {
    generation: u64,
    messages: Vec<BorrowedMessage<'a>>,
}

/// Runs the consumer until `stop` is set or the worker fails: reads on the calling thread
/// (where the rebalance callbacks run too) and processes on a second one, so that reading the
/// next records overlaps processing the last. On the way out, everything processed is stored
/// and checkpointed, and the group is left.
pub fn run_source<S: ResultStore>(
    settings: &SourceSettings,
    worker: Worker<S>,
    metrics: Metrics,
    stop: &AtomicBool,
) -> Result<(), WorkerError> {
    let context = SourceContext {
        topic: settings.topic.clone(),
        worker: Mutex::new(worker),
        generation: AtomicU64::new(0),
        fatal: Mutex::new(None),
        metrics: metrics.clone(),
    };
    let consumer: BaseConsumer<SourceContext<S>> = consumer_config(settings)
        .create_with_context(context)
        .map_err(|e| source_error(format!("cannot create the Kafka consumer: {e}")))?;
    consumer
        .subscribe(&[&settings.topic])
        .map_err(|e| source_error(format!("cannot subscribe to {}: {e}", settings.topic)))?;
    let context = consumer.context();
    let result = std::thread::scope(|scope| {
        let (batches, received) = std::sync::mpsc::sync_channel::<Batch<'_>>(2);
        let processor = std::thread::Builder::new()
            .name("stream-process".into())
            .spawn_scoped(scope, || process(&consumer, &settings.topic, received))
            .map_err(|e| source_error(format!("cannot start the processing thread: {e}")))?;
        let read = read(&consumer, &metrics, stop, &processor, batches);
        let processed = processor
            .join()
            .unwrap_or_else(|_| Err(source_error("the processing thread panicked".into())));
        read.and(processed)
    });
    // A failure recorded by a callback during the last polls.
    let fatal = context
        .fatal
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    let result = result
        .and_then(|()| fatal.map_or(Ok(()), Err))
        .and_then(|()| {
            let mut worker = context.worker()?;
            worker.commit(true)?;
            let stored = worker.take_stored();
            drop(worker);
            commit_offsets(&consumer, &settings.topic, &stored, CommitMode::Sync);
            Ok(())
        });
    // Leaving the group revokes the partitions (through the callback) so that the others
    // take them over at once.
    consumer.unsubscribe();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !consumer
        .assignment()
        .map(|a| a.count() == 0)
        .unwrap_or(true)
        && Instant::now() < deadline
    {
        let _ = consumer.poll(Duration::from_millis(50));
    }
    result
}

/// The reading loop: polls batches and hands them to the processing thread until told to
/// stop, the worker fails, or the processing thread ends.
fn read<'a, S: ResultStore>(
    consumer: &'a BaseConsumer<SourceContext<S>>,
    metrics: &Metrics,
    stop: &AtomicBool,
    processor: &std::thread::ScopedJoinHandle<'_, Result<(), WorkerError>>,
    batches: std::sync::mpsc::SyncSender<Batch<'a>>,
) -> Result<(), WorkerError> {
    let context = consumer.context();
    loop {
        if stop.load(Ordering::Relaxed) || processor.is_finished() {
            return Ok(());
        }
        if let Some(e) = context
            .fatal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            return Err(e);
        }
        let generation = context.generation.load(Ordering::SeqCst);
        let mut messages = Vec::with_capacity(64);
        let mut wait = Duration::from_millis(50);
        while messages.len() < MAX_BATCH {
            match consumer.poll(wait) {
                Some(Ok(message)) => messages.push(message),
                Some(Err(e)) => {
                    metrics.source_errors.inc();
                    tracing::debug!(error = %e, "consumer error");
                    break;
                }
                None => break,
            }
            wait = Duration::ZERO;
        }
        if messages.is_empty() || context.generation.load(Ordering::SeqCst) != generation {
            // Nothing, or a rebalance ran inside poll (positions were reset to the
            // checkpoints, so these records will be read again).
            continue;
        }
        if batches
            .send(Batch {
                generation,
                messages,
            })
            .is_err()
        {
            return Ok(());
        }
    }
}

/// The processing loop: feeds batches to the worker, ticks it at least every 50 ms, and
/// commits consumer offsets as checkpoints are stored. Returns when the reader hangs up.
fn process<S: ResultStore>(
    consumer: &BaseConsumer<SourceContext<S>>,
    topic: &str,
    received: std::sync::mpsc::Receiver<Batch<'_>>,
) -> Result<(), WorkerError> {
    let context = consumer.context();
    loop {
        let batch = match received.recv_timeout(Duration::from_millis(50)) {
            Ok(batch) => Some(batch),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        };
        let stored = {
            let mut worker = context.worker()?;
            // Checked under the worker's lock, which the rebalance callback takes after
            // bumping the generation: a batch read before a rebalance never reaches the
            // partitions' new state.
            if let Some(batch) = &batch
                && batch.generation == context.generation.load(Ordering::SeqCst)
            {
                for (partition, records) in group_by_partition(&batch.messages) {
                    worker.process(partition, &records);
                }
            }
            worker.tick()?;
            worker.take_stored()
        };
        drop(batch);
        commit_offsets(consumer, topic, &stored, CommitMode::Async);
    }
}

fn source_error(message: String) -> WorkerError {
    WorkerError::Sink(SinkError {
        sink: "kafka-source",
        message,
    })
}

fn consumer_config(settings: &SourceSettings) -> ClientConfig {
    let mut config = service_common::kafka::client_config(&settings.bootstrap_servers);
    config
        .set("group.id", &settings.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // Where to start without a checkpoint; with one, the rebalance callback sets it.
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "roundrobin")
        .set(
            "session.timeout.ms",
            settings.session_timeout.as_millis().to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            (settings.session_timeout.as_millis() / 4)
                .max(100)
                .to_string(),
        )
        .set("statistics.interval.ms", "5000")
        // Once the local queue is full (100,000 records), librdkafka pauses fetching for this
        // long; its default (1 s) leaves a consumer that processes a little slower than it
        // fetches idle most of the time.
        .set("fetch.queue.backoff.ms", "10");
    config
}

/// Splits a batch into runs per partition, keeping each partition's order.
fn group_by_partition<'a>(batch: &'a [BorrowedMessage<'_>]) -> Vec<(u32, Vec<Record<'a>>)> {
    let mut runs: Vec<(u32, Vec<Record<'a>>)> = Vec::new();
    for message in batch {
        let Ok(partition) = u32::try_from(message.partition()) else {
            continue;
        };
        let record = Record {
            offset: message.offset().max(0) as u64,
            key: message.key(),
            payload: message.payload(),
        };
        match runs.iter_mut().find(|(p, _)| *p == partition) {
            Some((_, records)) => records.push(record),
            None => runs.push((partition, vec![record])),
        }
    }
    runs
}

/// Commits the consumer offsets of stored checkpoints, for lag monitoring.
fn commit_offsets<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    stored: &[Stored],
    mode: CommitMode,
) {
    if stored.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for s in stored {
        let _ = tpl.add_partition_offset(
            topic,
            s.partition as i32,
            Offset::Offset(s.resume_offset as i64),
        );
    }
    if let Err(e) = consumer.commit(&tpl, mode) {
        tracing::debug!(error = %e, "offset commit failed");
    }
}
