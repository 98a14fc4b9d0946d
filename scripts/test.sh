#!/usr/bin/env bash
# The whole test suite: the format and lint gate, unit and integration tests
# of every crate (the Kafka ones against a real Apache Kafka broker), then
# every scenario through the `rollcall scenario check` command. It ends with
# one summary line over all of them, `N passed, N failed, N skipped`, after
# naming each skipped test and why.
#
# Uses the cluster in ROLLCALL_TEST_BROKERS when it is set; otherwise starts
# a single-node broker with scripts/kafka.sh (jars from Maven Central on
# first use) and stops it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

work="$(mktemp -d "${TMPDIR:-/tmp}/rollcall-test.XXXXXX")"
export ROLLCALL_SKIPS="$work/skips.tsv"
: >"$ROLLCALL_SKIPS"
log="$work/test.log"
cleanup() {
  [ -n "${started_broker:-}" ] && scripts/kafka.sh stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "test: format and lints"
gate_failed=0
cargo fmt --all --check || { echo "test: cargo fmt --check failed (run cargo fmt --all)"; gate_failed=1; }

# The processor's crash points (crates/kafka/src/crash.rs) are compiled in
# for the tests that abort it at a named step of its protocol.
features=(--features rollcall-cli/crash-points)
echo "test: building (release profile; RocksDB and librdkafka take ~10 minutes on a cold target directory)"
cargo build --release --workspace --all-targets "${features[@]}"
cargo clippy --release --workspace --all-targets "${features[@]}" -- -D warnings || { echo "test: clippy found warnings"; gate_failed=1; }

if [ -z "${ROLLCALL_TEST_BROKERS:-}" ]; then
  export ROLLCALL_KAFKA_RUN="${ROLLCALL_KAFKA_RUN:-${TMPDIR:-/tmp}/rollcall-test-kafka-$$}"
  started_broker=1
  ROLLCALL_TEST_BROKERS="$(scripts/kafka.sh start | tail -n 1)"
  export ROLLCALL_TEST_BROKERS
  echo "test: Kafka broker at $ROLLCALL_TEST_BROKERS"
fi

# `bench peers` builds and runs the Kafka Streams and Flink (Maven) and Quix
# Streams (a Python virtualenv) peers once on a tiny district.
export ROLLCALL_TEST_PEERS="${ROLLCALL_TEST_PEERS:-1}"

status=0
cargo test --release --workspace --no-fail-fast "${features[@]}" 2>&1 | tee "$log" || status=1

dirs=(tests/scenarios)
[ -d ../shared/scenarios ] && dirs+=(../shared/scenarios)
cargo run --release -q "${features[@]}" -- scenario check "${dirs[@]}" 2>&1 | tee -a "$log" || status=1

# The closing summary. libtest binaries (the crates' unit tests) end in
# `test result: ok. N passed; M failed; ...`; the integration tests
# (tests/main.rs, with its own runner) and `scenario check` end in
# `N passed, M failed[, K skipped]`. A test recorded in ROLLCALL_SKIPS
# returned as passed, so it moves from passed to skipped.
read -r passed failed skipped < <(awk '
  /^test result: / { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;/) p += $i; if ($(i+1) ~ /^failed;/) f += $i } }
  /^[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$/ { p += $1; f += $3; if (NF >= 6) s += $5 }
  END { print p + 0, f + 0, s + 0 }' "$log")
recorded=$(grep -c . "$ROLLCALL_SKIPS" || true)
passed=$((passed - recorded))
skipped=$((skipped + recorded))
failed=$((failed + gate_failed))
echo
if [ "$recorded" -gt 0 ]; then
  echo "skipped:"
  while IFS=$'\t' read -r name why; do echo "  $name: $why"; done <"$ROLLCALL_SKIPS"
fi
[ "$gate_failed" -eq 0 ] || echo "failed: the format and lint gate (see above)"
echo "$passed passed, $failed failed, $skipped skipped"
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ]; then
  exit 1
fi
