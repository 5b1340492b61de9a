//! Kafka client settings and topic creation shared by the producers and consumers.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

/// The settings every client of the platform starts from.
pub fn client_config(bootstrap_servers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap_servers)
        // Fail fast on a dead address, and come back quickly once the broker is back.
        .set("socket.connection.setup.timeout.ms", "5000")
        .set("reconnect.backoff.max.ms", "1000");
    config
}

/// A topic the platform needs.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
}

/// Creates the topics that do not exist yet; existing ones are left as they are.
pub async fn ensure_topics(
    bootstrap_servers: &str,
    topics: &[TopicSpec],
    timeout: Duration,
) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = client_config(bootstrap_servers)
        .create()
        .map_err(|e| format!("cannot create a Kafka admin client: {e}"))?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(timeout));
    let results = admin
        .create_topics(new.iter(), &options)
        .await
        .map_err(|e| format!("cannot create topics on {bootstrap_servers}: {e}"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(format!("cannot create topic {topic}: {code}")),
        }
    }
    Ok(())
}
