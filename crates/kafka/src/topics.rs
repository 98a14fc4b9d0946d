//! `rollcall topics create`: the topics of docs/data-model.md, idempotently.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
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
        // Read whole by every gateway, like the calendars.
        t(&topics.identities, 1, true),
        t(&topics.waiting, partitions, false),
    ]
}

/// Creates every topic that does not exist yet; returns the names created.
pub fn create_topics(brokers: &str, topics: &Topics, partitions: i32, replication: i32) -> Result<Vec<String>, KafkaError> {
    if partitions < 1 {
        return Err(KafkaError::Setup("partitions must be at least 1".into()));
    }
    let admin: AdminClient<DefaultClientContext> =
        crate::client_config(brokers).create().map_err(|e| KafkaError::kafka(format!("admin client for {brokers}"), e))?;
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
            Err((name, code)) => {
                return Err(KafkaError::kafka(format!("creating topic {name}"), rdkafka::error::KafkaError::AdminOp(code)))
            }
        }
    }
    Ok(created)
}

/// Deletes every topic of `topics` that exists (what `rollcall demo`
/// created for itself); returns the names deleted.
pub fn delete_topics(brokers: &str, topics: &Topics) -> Result<Vec<String>, KafkaError> {
    let admin: AdminClient<DefaultClientContext> =
        crate::client_config(brokers).create().map_err(|e| KafkaError::kafka(format!("admin client for {brokers}"), e))?;
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
            Err((name, code)) => {
                return Err(KafkaError::kafka(format!("deleting topic {name}"), rdkafka::error::KafkaError::AdminOp(code)))
            }
        }
    }
    Ok(deleted)
}

/// The partition count of each topic that exists, by name.
pub fn partition_counts(brokers: &str, names: &[&str]) -> Result<std::collections::BTreeMap<String, i32>, KafkaError> {
    Ok(topic_shapes(brokers, names)?.into_iter().map(|(k, (p, _))| (k, p)).collect())
}

/// (partitions, replicas) of each topic that exists, by name.
fn topic_shapes(brokers: &str, names: &[&str]) -> Result<std::collections::BTreeMap<String, (i32, i32)>, KafkaError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer =
        crate::client_config(brokers).create().map_err(|e| KafkaError::kafka(format!("metadata client for {brokers}"), e))?;
    let mut out = std::collections::BTreeMap::new();
    for name in names {
        let md = c
            .fetch_metadata(Some(name), Duration::from_secs(10))
            .map_err(|e| KafkaError::kafka(format!("metadata of {name} on {brokers}"), e))?;
        for t in md.topics() {
            if t.error().is_none() && !t.partitions().is_empty() {
                let replicas = t.partitions().iter().map(|p| p.replicas().len() as i32).max().unwrap_or(1);
                out.insert(t.name().to_string(), (t.partitions().len() as i32, replicas));
            }
        }
    }
    Ok(out)
}

/// The keyed inputs and the changelog are joined by partition: they must
/// have one partition count, the one asked for. Names each that differs.
pub fn check_partitions(topics: &Topics, counts: &std::collections::BTreeMap<String, i32>, asked: i32) -> Result<(), KafkaError> {
    let keyed = [&topics.activity, &topics.roster, &topics.reports, &topics.changelog];
    let wrong: Vec<String> =
        keyed.iter().filter_map(|t| counts.get(t.as_str()).filter(|n| **n != asked).map(|n| format!("{t} has {n}"))).collect();
    if wrong.is_empty() {
        return Ok(());
    }
    Err(KafkaError::Setup(format!(
        "{} partition(s) asked, but {}: the keyed topics must agree, since a student's records are joined by partition. \
         Create the topics anew with one count (adding partitions to an existing topic moves keys to other partitions)",
        asked,
        wrong.join(", ")
    )))
}

/// Creates the group's changelog when it is missing, with the partitions
/// and replicas of the activity topic (a new group's first start).
pub fn ensure_changelog(brokers: &str, topics: &Topics) -> Result<bool, KafkaError> {
    let shapes = topic_shapes(brokers, &[&topics.activity, &topics.changelog])?;
    if shapes.contains_key(&topics.changelog) {
        return Ok(false);
    }
    let Some((partitions, replication)) = shapes.get(&topics.activity).copied() else {
        return Err(KafkaError::Setup(format!("topic {} does not exist: run `rollcall topics create` first", topics.activity)));
    };
    let admin: AdminClient<DefaultClientContext> =
        crate::client_config(brokers).create().map_err(|e| KafkaError::kafka(format!("admin client for {brokers}"), e))?;
    let t = NewTopic::new(&topics.changelog, partitions, TopicReplication::Fixed(replication)).set("cleanup.policy", "compact");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = crate::block_on(admin.create_topics([&t], &opts))
        .map_err(|e| KafkaError::kafka(format!("creating {} on {brokers}", topics.changelog), e))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(KafkaError::kafka(format!("creating topic {name}"), rdkafka::error::KafkaError::AdminOp(code)))
            }
        }
    }
    Ok(true)
}
