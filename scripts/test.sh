#!/usr/bin/env bash
# The whole test suite: unit and integration tests of every crate (the Kafka
# ones against a real Apache Kafka broker), then every scenario through the
# `rollcall scenario check` command.
#
# Uses the cluster in ROLLCALL_TEST_BROKERS when it is set; otherwise starts
# a single-node broker with scripts/kafka.sh (jars from Maven Central on
# first use) and stops it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
echo "test: building (release profile; RocksDB and librdkafka take ~10 minutes on a cold target directory)"
cargo build --release --workspace --all-targets

if [ -z "${ROLLCALL_TEST_BROKERS:-}" ]; then
  export ROLLCALL_KAFKA_RUN="${ROLLCALL_KAFKA_RUN:-${TMPDIR:-/tmp}/rollcall-test-kafka-$$}"
  trap 'scripts/kafka.sh stop >/dev/null 2>&1 || true' EXIT
  ROLLCALL_TEST_BROKERS="$(scripts/kafka.sh start | tail -n 1)"
  export ROLLCALL_TEST_BROKERS
  echo "test: Kafka broker at $ROLLCALL_TEST_BROKERS"
fi

cargo test --release --workspace

dirs=(tests/scenarios)
[ -d ../shared/scenarios ] && dirs+=(../shared/scenarios)
cargo run --release -q -- scenario check "${dirs[@]}"
