//! `rollcall topics create`: the topics of docs/data-model.md, idempotently.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;

use crate::wire::*;
use crate::KafkaError;

/// One topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub compacted: bool,
}

/// The topics, with `partitions` for every keyed input (they must agree:
/// the processor joins them by partition) and the processor's outputs.
pub fn topic_specs(topics: &Topics, partitions: i32) -> Vec<TopicSpec> {
    let t = |name: &String, partitions, compacted| TopicSpec { name: name.clone(), partitions, compacted };
    vec![
        t(&topics.activity, partitions, false),
        t(&topics.roster, partitions, true),
        t(&topics.reports, partitions, false),
        // Small, and read whole by every instance.
        t(&topics.calendar, 1, true),
        t(&topics.determinations, partitions, true),
        t(&topics.outreach, partitions, false),
        t(&topics.dlq, 1, false),
        // One changelog partition per input partition: a task's state.
        t(&topics.changelog, partitions, true),
    ]
}

/// Creates every topic that does not exist yet; returns the names created.
pub fn create_topics(brokers: &str, topics: &Topics, partitions: i32, replication: i32) -> Result<Vec<String>, KafkaError> {
    if partitions < 1 {
        return Err(KafkaError::Setup("partitions must be at least 1".into()));
    }
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(|e| KafkaError::kafka(format!("admin client for {brokers}"), e))?;
    let specs = topic_specs(topics, partitions);
    let new: Vec<NewTopic> = specs
        .iter()
        .map(|s| {
            let t = NewTopic::new(&s.name, s.partitions, TopicReplication::Fixed(replication));
            if s.compacted {
                t.set("cleanup.policy", "compact")
            } else {
                t
            }
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = crate::block_on(admin.create_topics(new.iter(), &opts))
        .map_err(|e| KafkaError::kafka(format!("creating topics on {brokers}"), e))?;
    let mut created = Vec::new();
    for r in results {
        match r {
            Ok(name) => created.push(name),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(KafkaError::kafka(format!("creating topic {name}"), rdkafka::error::KafkaError::AdminOp(code))),
        }
    }
    Ok(created)
}

/// Deletes every topic of `topics` that exists (what `rollcall demo`
/// created for itself); returns the names deleted.
pub fn delete_topics(brokers: &str, topics: &Topics) -> Result<Vec<String>, KafkaError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(|e| KafkaError::kafka(format!("admin client for {brokers}"), e))?;
    let names: Vec<String> = topic_specs(topics, 1).into_iter().map(|s| s.name).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = crate::block_on(admin.delete_topics(&refs, &opts))
        .map_err(|e| KafkaError::kafka(format!("deleting topics on {brokers}"), e))?;
    let mut deleted = Vec::new();
    for r in results {
        match r {
            Ok(name) => deleted.push(name),
            Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
            Err((name, code)) => return Err(KafkaError::kafka(format!("deleting topic {name}"), rdkafka::error::KafkaError::AdminOp(code))),
        }
    }
    Ok(deleted)
}
