"""rollcall's topics through the real Confluent client (PyPI's confluent-kafka).

Run by tests/registry.rs, which checks what it prints:

  confluent_client.py read BROKERS REGISTRY_URL TOPIC...
      Reads each topic from the beginning to its end, read_committed, with
      AvroDeserializer and the registry; prints one JSON line per record,
      {"topic": ..., "key": ..., "value": {...}} (dates and instants in ISO 8601).

  confluent_client.py produce BROKERS REGISTRY_URL SCHEMAS_DIR FILE
      Produces the records in FILE (a JSON list of {"topic", "key",
      "timestamp_ms", "schema", "value"}, in order) with AvroSerializer,
      which registers each schema under <topic>-value; waits for every
      delivery, and prints how many records were delivered.
"""

import datetime
import json
import sys

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext, StringSerializer


def plain(v):
    if isinstance(v, (datetime.datetime, datetime.date)):
        return v.isoformat()
    raise TypeError(f"not JSON: {type(v)}")


def read(brokers, registry_url, topics):
    registry = registry_client(registry_url)
    deserializer = AvroDeserializer(registry)
    for topic in topics:
        consumer = Consumer({
            "bootstrap.servers": brokers,
            "group.id": f"rollcall-python-{topic}",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        })
        md = consumer.list_topics(topic, timeout=30)
        parts = list(md.topics[topic].partitions)
        if not parts:
            sys.exit(f"{topic}: no partitions")
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        ended = set()
        idle = 0
        while len(ended) < len(parts):
            m = consumer.poll(1.0)
            if m is None:
                idle += 1
                if idle > 60:
                    sys.exit(f"{topic}: did not reach the end in 60 s")
                continue
            idle = 0
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    ended.add(m.partition())
                    continue
                sys.exit(f"{topic}: {m.error()}")
            ended.discard(m.partition())
            value = deserializer(m.value(), SerializationContext(topic, MessageField.VALUE))
            key = m.key().decode() if m.key() is not None else None
            print(json.dumps({"topic": topic, "key": key, "value": value}, default=plain))
        consumer.close()


def registry_client(url):
    # A request the registry never answers (seen once: a schema registration
    # on a kept-alive connection) times out and is retried by the client,
    # instead of waiting forever; registering the same schema again is harmless.
    return SchemaRegistryClient({"url": url, "timeout": 10, "max.retries": 3})


def produce(brokers, registry_url, schemas_dir, path):
    registry = registry_client(registry_url)
    with open(path) as f:
        records = json.load(f)
    serializers = {}
    producer = Producer({
        "bootstrap.servers": brokers,
        # As the Java client partitions keys: rollcall's inputs are keyed by student.
        "partitioner": "murmur2_random",
        "enable.idempotence": True,
    })
    keys = StringSerializer("utf_8")
    failed = []
    delivered = [0]

    def report(err, _msg):
        if err is not None:
            failed.append(str(err))
        else:
            delivered[0] += 1

    previous = None
    for r in records:
        topic = r["topic"]
        if topic not in serializers:
            with open(f"{schemas_dir}/{r['schema']}") as f:
                serializers[topic] = AvroSerializer(registry, f.read())
        # The world before what happens in it: each topic's records are on
        # the broker before the next topic's (calendars, roster, reports, events).
        if previous is not None and previous != topic:
            producer.flush(60)
        previous = topic
        ctx = SerializationContext(topic, MessageField.VALUE)
        producer.produce(topic, key=keys(r["key"]), value=serializers[topic](r["value"], ctx),
                         timestamp=r["timestamp_ms"], on_delivery=report)
        producer.poll(0)
    left = producer.flush(60)
    if failed or left:
        sys.exit(f"delivery failed: {failed[:3]}, {left} not delivered")
    print(delivered[0])


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "read" and len(sys.argv) >= 5:
        read(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif cmd == "produce" and len(sys.argv) == 6:
        produce(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
    else:
        sys.exit(__doc__)
