//! The read side on Kafka: a consumer group member. Rebalancing is eager: every partition is
//! revoked (the listener stores and checkpoints them before the group moves on), then the new
//! set assigned (the listener restores each and says where it starts).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;

use super::{Cluster, KafkaContext, first_token};
use crate::{
    PartitionListener, PartitionReader, ReadBatch, ReadError, ReadRecord, StartAt, TRACEPARENT,
};

/// Consumer settings of [`KafkaReader`].
#[derive(Debug, Clone)]
pub struct KafkaReaderSettings {
    pub cluster: Cluster,
    pub topic: String,
    pub group_id: String,
    /// The group forgets a silent member after this long (its partitions move on).
    pub session_timeout: Duration,
}

struct Context<L> {
    kafka: KafkaContext,
    topic: String,
    listener: Arc<L>,
    /// What this member was last assigned, to give up on a failed rebalance.
    owned: Mutex<Vec<u32>>,
}

impl<L> Context<L> {
    fn partitions(&self, tpl: &TopicPartitionList) -> Vec<u32> {
        tpl.elements_for_topic(&self.topic)
            .iter()
            .filter_map(|e| u32::try_from(e.partition()).ok())
            .collect()
    }

    fn set_owned(&self, partitions: Vec<u32>) {
        *self.owned.lock().unwrap_or_else(|e| e.into_inner()) = partitions;
    }
}

impl<L: PartitionListener> ClientContext for Context<L> {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _: Option<&str>,
    ) -> Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
        self.kafka.token()
    }

    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        for (&partition, stats) in &topic.partitions {
            if let Ok(partition) = u32::try_from(partition)
                && stats.consumer_lag >= 0
            {
                self.listener.lag(partition, stats.consumer_lag as u64);
            }
        }
    }
}

impl<L: PartitionListener> ConsumerContext for Context<L> {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let partitions = self.partitions(tpl);
        let outcome = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                match self.listener.assigned(&partitions) {
                    Some(starts) => {
                        for (partition, start) in starts {
                            let offset = match start {
                                StartAt::Beginning => Offset::Beginning,
                                StartAt::Offset(o) => Offset::Offset(o as i64),
                                StartAt::End => Offset::End,
                            };
                            if let Err(e) =
                                tpl.set_partition_offset(&self.topic, partition as i32, offset)
                            {
                                tracing::error!(partition, error = %e, "cannot set the start offset");
                            }
                        }
                        self.set_owned(partitions);
                        consumer.assign(tpl)
                    }
                    None => {
                        self.set_owned(Vec::new());
                        consumer.unassign()
                    }
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.listener.revoked(&partitions);
                self.set_owned(Vec::new());
                consumer.unassign()
            }
            other => {
                // Whatever the list says, this member gives up everything it owns.
                tracing::error!(error = ?other, "rebalance failed");
                let owned =
                    std::mem::take(&mut *self.owned.lock().unwrap_or_else(|e| e.into_inner()));
                self.listener.revoked(&owned);
                consumer.unassign()
            }
        };
        if let Err(e) = outcome {
            tracing::error!(error = %e, "cannot change the assignment");
        }
    }
}

/// A member of a consumer group reading one topic.
pub struct KafkaReader<L: PartitionListener> {
    consumer: BaseConsumer<Context<L>>,
    topic: String,
}

impl<L: PartitionListener> KafkaReader<L> {
    /// Reads every partition of the topic without joining a group (every instance gets all of
    /// them; nothing is committed): the listener is told of them at once and says where each
    /// starts (a live tail starts at the end).
    pub fn assign_all(settings: &KafkaReaderSettings, listener: Arc<L>) -> Result<Self, ReadError> {
        let context = Context {
            kafka: settings.cluster.context(),
            topic: settings.topic.clone(),
            listener: listener.clone(),
            owned: Mutex::new(Vec::new()),
        };
        let consumer: BaseConsumer<Context<L>> = consumer_config(settings)
            .create_with_context(context)
            .map_err(|e| ReadError(format!("cannot create the Kafka consumer: {e}")))?;
        // The metadata request below is made before anything polls this consumer, so its first
        // token cannot wait for the refresh event that a poll would answer.
        first_token(consumer.client(), &settings.cluster).map_err(ReadError)?;
        let metadata = consumer
            .fetch_metadata(Some(&settings.topic), Duration::from_secs(10))
            .map_err(|e| {
                ReadError(format!(
                    "cannot read the metadata of {}: {e}",
                    settings.topic
                ))
            })?;
        let partitions: Vec<u32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions())
            .filter_map(|p| u32::try_from(p.id()).ok())
            .collect();
        if partitions.is_empty() {
            return Err(ReadError(format!(
                "topic {} does not exist",
                settings.topic
            )));
        }
        let starts = listener
            .assigned(&partitions)
            .ok_or_else(|| ReadError("the listener refused the partitions".into()))?;
        let mut tpl = TopicPartitionList::new();
        for (partition, start) in starts {
            let offset = match start {
                StartAt::Beginning => Offset::Beginning,
                StartAt::Offset(o) => Offset::Offset(o as i64),
                StartAt::End => Offset::End,
            };
            tpl.add_partition_offset(&settings.topic, partition as i32, offset)
                .map_err(|e| ReadError(e.to_string()))?;
        }
        consumer
            .assign(&tpl)
            .map_err(|e| ReadError(format!("cannot assign {}: {e}", settings.topic)))?;
        consumer.context().set_owned(partitions);
        Ok(KafkaReader {
            consumer,
            topic: settings.topic.clone(),
        })
    }

    /// Joins the group; the listener hears of the partitions this member gets from `poll`.
    pub fn subscribe(settings: &KafkaReaderSettings, listener: Arc<L>) -> Result<Self, ReadError> {
        let context = Context {
            kafka: settings.cluster.context(),
            topic: settings.topic.clone(),
            listener,
            owned: Mutex::new(Vec::new()),
        };
        let consumer: BaseConsumer<Context<L>> = consumer_config(settings)
            .create_with_context(context)
            .map_err(|e| ReadError(format!("cannot create the Kafka consumer: {e}")))?;
        consumer
            .subscribe(&[&settings.topic])
            .map_err(|e| ReadError(format!("cannot subscribe to {}: {e}", settings.topic)))?;
        Ok(KafkaReader {
            consumer,
            topic: settings.topic.clone(),
        })
    }
}

fn consumer_config(settings: &KafkaReaderSettings) -> ClientConfig {
    let mut config = settings.cluster.client_config();
    config
        .set("group.id", &settings.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // Where to start when the listener says "the beginning".
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

/// Messages polled together.
pub struct KafkaBatch<'a>(Vec<BorrowedMessage<'a>>);

impl ReadBatch for KafkaBatch<'_> {
    fn runs(&self) -> Vec<(u32, Vec<ReadRecord<'_>>)> {
        let mut runs: Vec<(u32, Vec<ReadRecord<'_>>)> = Vec::new();
        for message in &self.0 {
            let Ok(partition) = u32::try_from(message.partition()) else {
                continue;
            };
            let record = ReadRecord {
                offset: message.offset().max(0) as u64,
                key: message.key(),
                payload: message.payload(),
                trace: message.headers().and_then(|headers| {
                    headers
                        .iter()
                        .find(|h| h.key == TRACEPARENT)
                        .and_then(|h| h.value)
                }),
            };
            match runs.iter_mut().find(|(p, _)| *p == partition) {
                Some((_, records)) => records.push(record),
                None => runs.push((partition, vec![record])),
            }
        }
        runs
    }
}

impl<L: PartitionListener> PartitionReader for KafkaReader<L> {
    type Batch<'a>
        = KafkaBatch<'a>
    where
        Self: 'a;

    fn poll(&self, max: usize, timeout: Duration) -> Result<Option<KafkaBatch<'_>>, ReadError> {
        let mut messages = Vec::with_capacity(64);
        let mut wait = timeout;
        while messages.len() < max {
            match self.consumer.poll(wait) {
                Some(Ok(message)) => messages.push(message),
                Some(Err(e)) if messages.is_empty() => return Err(ReadError(e.to_string())),
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "consumer error");
                    break;
                }
                None => break,
            }
            wait = Duration::ZERO;
        }
        Ok((!messages.is_empty()).then_some(KafkaBatch(messages)))
    }

    fn commit(&self, offsets: &[(u32, u64)], wait: bool) {
        if offsets.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for &(partition, offset) in offsets {
            let _ = tpl.add_partition_offset(
                &self.topic,
                partition as i32,
                Offset::Offset(offset as i64),
            );
        }
        let mode = if wait {
            CommitMode::Sync
        } else {
            CommitMode::Async
        };
        if let Err(e) = self.consumer.commit(&tpl, mode) {
            tracing::debug!(error = %e, "offset commit failed");
        }
    }

    /// Leaving the group revokes the partitions (through the listener) so that the other
    /// members take them over at once.
    fn close(&self) {
        self.consumer.unsubscribe();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self
            .consumer
            .assignment()
            .map(|a| a.count() == 0)
            .unwrap_or(true)
            && Instant::now() < deadline
        {
            let _ = self.consumer.poll(Duration::from_millis(50));
        }
    }
}
