#!/usr/bin/env python3
"""Daily engagement, Quix Streams peer of rollcall's daily-engagement policy.

Reads lms.activity.v1 (key student_id, value Avro single-object encoded
ActivityEvent), keeps the engagement events, counts them per student in a
one-day tumbling window on the school-local date of occurred_at, and emits
one PRESENT record per (student, day) when the window closes (.final()).
Exactly-once processing, RocksDB state with changelog topics.

The last line printed is exactly
    quix: <N> events in <S> s = <R> events/s
timed from the first input record deserialized to the end of the final
checkpoint commit (the run loop returns after it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import shutil
import sys
import time
import uuid
import warnings
from zoneinfo import ZoneInfo

# A dependency of quixstreams (authlib) warns about itself on import and
# forces its own warnings on; put our filter in front of its one.
try:
    import authlib.deprecate  # noqa: F401
except ImportError:
    pass
warnings.filterwarnings("ignore", message=".*httpx module is deprecated")

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from quixstreams import Application
from quixstreams.models.serializers import Deserializer, SerializationContext

import activity_avro

DAY_MS = 86_400_000

# Every kind counts except these two (they close something, they are not
# activity of their own).
NOT_ENGAGEMENT = frozenset({"LOGOUT", "LIVE_LEAVE"})
# rollcall's own engagement test (engine is_engagement): these kinds, and a
# MESSAGE only when the student sent it.
ROLLCALL_ENGAGEMENT = frozenset({
    "SUBMISSION", "MESSAGE", "LIVE_JOIN", "CONTENT_ACCESS", "RECORDING_VIEW",
    "TWO_WAY_CONTACT", "OFFLINE_WORK_RETURNED",
})


def is_engaged_simple(e: dict) -> bool:
    return e["kind"] not in NOT_ENGAGEMENT


def is_engaged_rollcall(e: dict) -> bool:
    k = e["kind"]
    return k in ROLLCALL_ENGAGEMENT and (k != "MESSAGE" or e["direction"] == "FROM_STUDENT")


def parse_duration_ms(text: str) -> int:
    """'0', '30m', '1h', '2d', '90s', '500ms' or ISO-8601 'PT1H' / 'P1D'."""
    t = text.strip().upper()
    if t.startswith("P"):
        days = hours = minutes = seconds = 0.0
        date_part, _, time_part = t[1:].partition("T")
        if date_part:
            if not date_part.endswith("D"):
                raise ValueError(f"unsupported duration {text!r}")
            days = float(date_part[:-1])
        num = ""
        for ch in time_part:
            if ch.isdigit() or ch == ".":
                num += ch
                continue
            v = float(num)
            num = ""
            if ch == "H":
                hours = v
            elif ch == "M":
                minutes = v
            elif ch == "S":
                seconds = v
            else:
                raise ValueError(f"unsupported duration {text!r}")
        return int(((days * 24 + hours) * 60 + minutes) * 60_000 + seconds * 1000)
    for suffix, mult in (("MS", 1), ("S", 1000), ("M", 60_000), ("H", 3_600_000), ("D", DAY_MS)):
        if t.endswith(suffix) and t[: -len(suffix)].replace(".", "", 1).isdigit():
            return int(float(t[: -len(suffix)]) * mult)
    return int(t)  # plain milliseconds


class LocalTime:
    """UTC instant (ms) -> the same wall-clock time in the school's zone,
    expressed as epoch ms, so that UTC-aligned one-day windows are local
    days. A fixed offset ('-06:00') or an IANA zone ('America/Chicago', with
    its daylight saving time); offsets are cached per UTC hour."""

    def __init__(self, tz: str):
        self._fixed = None
        if tz[:1] in "+-" and ":" in tz:
            sign = -1 if tz[0] == "-" else 1
            h, m = tz[1:].split(":")
            self._fixed = sign * (int(h) * 3600 + int(m) * 60) * 1000
        else:
            self._zone = ZoneInfo(tz)
        self._cache: dict[int, int] = {}

    def shift(self, utc_ms: int) -> int:
        if self._fixed is not None:
            return utc_ms + self._fixed
        hour = utc_ms // 3_600_000
        off = self._cache.get(hour)
        if off is None:
            instant = dt.datetime.fromtimestamp(hour * 3600, tz=dt.timezone.utc)
            off = int(instant.astimezone(self._zone).utcoffset().total_seconds() * 1000)
            self._cache[hour] = off
        return utc_ms + off


class Stats:
    def __init__(self):
        self.first_ns: int | None = None
        self.processed = 0
        self.late = 0
        self.emitted = 0
        self.last_offsets: dict[int, int] = {}


class ActivityDeserializer(Deserializer):
    def __init__(self, fingerprints, stats: Stats):
        super().__init__()
        self._fps = fingerprints
        self._stats = stats

    def __call__(self, value: bytes, ctx: SerializationContext) -> dict:
        if self._stats.first_ns is None:
            self._stats.first_ns = time.perf_counter_ns()
        return activity_avro.decode(value, self._fps)


def ensure_output_topic(brokers: str, input_topic: str, output: str) -> dict[int, int]:
    """Creates the output topic (as many partitions as the input) if it is
    missing; returns its end offsets now, so that only this run's records
    are counted at the end."""
    admin = AdminClient({"bootstrap.servers": brokers})
    md = admin.list_topics(timeout=30)
    if input_topic not in md.topics or md.topics[input_topic].error is not None:
        sys.exit(f"quix: input topic {input_topic!r} does not exist")
    if output not in md.topics:
        n = len(md.topics[input_topic].partitions)
        fut = admin.create_topics([NewTopic(output, num_partitions=n, replication_factor=-1)])[output]
        try:
            fut.result(30)
        except Exception as e:  # created meanwhile by someone else
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                raise
        time.sleep(0.5)
        md = admin.list_topics(topic=output, timeout=30)
    parts = sorted(md.topics[output].partitions)
    c = Consumer({"bootstrap.servers": brokers, "group.id": f"peer-count-{uuid.uuid4().hex}"})
    ends = {p: c.get_watermark_offsets(TopicPartition(output, p), timeout=30)[1] for p in parts}
    c.close()
    return ends


def count_committed_output(brokers: str, output: str, start: dict[int, int]) -> int:
    """Records written to `output` since `start`, as a read_committed reader
    sees them."""
    c = Consumer({
        "bootstrap.servers": brokers,
        "group.id": f"peer-count-{uuid.uuid4().hex}",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    })
    c.assign([TopicPartition(output, p, off) for p, off in start.items()])
    pending = set(start)
    n = 0
    deadline = time.monotonic() + 120
    while pending and time.monotonic() < deadline:
        for m in c.consume(10_000, timeout=1.0):
            if m.error() is not None:
                if m.error().code() == -191:  # _PARTITION_EOF
                    pending.discard(m.partition())
                continue
            n += 1
    c.close()
    return n


def committed_offsets(brokers: str, group: str, topic: str, partitions) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": brokers, "group.id": group, "enable.auto.commit": False})
    got = c.committed([TopicPartition(topic, p) for p in partitions], timeout=30)
    c.close()
    return {tp.partition: tp.offset for tp in got}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--input", default="lms.activity.v1")
    ap.add_argument("--output", default="peer.daily.v1")
    ap.add_argument("--app-id", default=None, help="consumer group (default: a fresh one)")
    ap.add_argument("--expected", type=int, required=True, help="input records to process before exiting")
    ap.add_argument("--tz", default="America/Chicago", help="IANA zone or fixed offset such as -06:00")
    ap.add_argument("--grace", default="1h", help="how long a day stays open after it ends (event time)")
    ap.add_argument("--engagement", choices=("simple", "rollcall"), default="simple",
                    help="simple: every kind but LOGOUT and LIVE_LEAVE; rollcall: the engine's own test")
    ap.add_argument("--commit-interval-ms", type=int, default=5000, help="checkpoint interval (Quix default 5 s)")
    ap.add_argument("--state-dir", default=None, help="RocksDB state (default: state/<app-id> beside this file, removed at the end)")
    ap.add_argument("--schema", default=activity_avro.DEFAULT_SCHEMA)
    argv = sys.argv[1:]
    # Let '--tz -06:00' through (argparse would take -06:00 for an option).
    for i in range(len(argv) - 1):
        if argv[i] == "--tz" and argv[i + 1].startswith("-"):
            argv[i : i + 2] = [f"--tz={argv[i + 1]}"]
            break
    args = ap.parse_args(argv)

    app_id = args.app_id or f"peer-quix-{uuid.uuid4().hex[:8]}"
    grace_ms = parse_duration_ms(args.grace)
    local = LocalTime(args.tz)
    engaged = is_engaged_simple if args.engagement == "simple" else is_engaged_rollcall
    fingerprints = activity_avro.schema_fingerprints(args.schema)
    stats = Stats()
    expected = args.expected
    state_dir = args.state_dir or os.path.join(os.path.dirname(os.path.abspath(__file__)), "state", app_id)

    out_start = ensure_output_topic(args.brokers, args.input, args.output)

    app: Application

    def on_processed(topic: str, partition: int, offset: int) -> None:
        if topic != args.input:
            return
        stats.processed += 1
        stats.last_offsets[partition] = offset
        if stats.processed == expected:
            app.stop()

    def on_late(*_a) -> bool:
        stats.late += 1
        return False  # counted, not logged

    app = Application(
        broker_address=args.brokers,
        consumer_group=app_id,
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        commit_interval=args.commit_interval_ms / 1000.0,
        state_dir=state_dir,
        on_message_processed=on_processed,
        loglevel="WARNING",
    )
    in_topic = app.topic(
        args.input,
        key_deserializer="str",
        value_deserializer=ActivityDeserializer(fingerprints, stats),
        timestamp_extractor=lambda value, headers, ts, ts_type: local.shift(value["occurred_at"] // 1000),
    )
    out_topic = app.topic(args.output, key_serializer="str", value_serializer="json")

    def to_output(window: dict, key: str, *_meta) -> dict:
        stats.emitted += 1
        day = dt.date(1970, 1, 1) + dt.timedelta(days=window["start"] // DAY_MS)
        return {"student_id": key, "date": day.isoformat(), "status": "PRESENT", "events": window["value"]}

    sdf = app.dataframe(in_topic)
    sdf = sdf.filter(engaged)
    sdf = (
        sdf.tumbling_window(duration_ms=DAY_MS, grace_ms=grace_ms, name="daily-engagement", on_late=on_late)
        .count()
        .final(closing_strategy="partition")
    )
    sdf = sdf.apply(to_output, metadata=True)
    sdf.to_topic(out_topic, key=lambda v: f"{v['student_id']}|{v['date']}")

    print(f"quix: app id {app_id}, {args.input} -> {args.output}, tz {args.tz}, grace {grace_ms} ms, "
          f"engagement {args.engagement}, commit interval {args.commit_interval_ms} ms", flush=True)
    started = time.perf_counter_ns()
    app.run()
    finished = time.perf_counter_ns()

    try:
        if stats.processed < expected:
            sys.exit(f"quix: stopped after {stats.processed} of {expected} records")
        committed = committed_offsets(args.brokers, app_id, args.input, stats.last_offsets)
        behind = {p: (committed.get(p), off + 1) for p, off in stats.last_offsets.items()
                  if (committed.get(p) or -1) < off + 1}
        if behind:
            sys.exit(f"quix: committed offsets behind the processed ones: {behind}")
        out = count_committed_output(args.brokers, args.output, out_start)
        first = stats.first_ns or started
        secs = (finished - first) / 1e9
        print(f"quix: startup {(first - started) / 1e9:.2f} s; committed offsets cover all "
              f"{stats.processed} records; {stats.late} late events dropped; "
              f"{stats.emitted} present days emitted, {out} read back from {args.output} (read_committed)",
              flush=True)
        print(f"quix: {stats.processed} events in {secs:.2f} s = {stats.processed / secs:.0f} events/s", flush=True)
    finally:
        if args.state_dir is None:
            shutil.rmtree(state_dir, ignore_errors=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
