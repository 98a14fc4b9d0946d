#!/usr/bin/env bash
# Runs the three peer implementations of the daily-engagement job, one after
# the other, on the same broker and input topic, each with a fresh application
# id (consumer group) and fresh local state, and prints their last lines:
#
#   kafka-streams: <N> events in <S> s = <R> events/s
#   quix: <N> events in <S> s = <R> events/s
#   flink: <N> events in <S> s = <R> events/s
#
# usage: bench/peers/run.sh --brokers HOST:PORT --input TOPIC --expected N
#          [--output TOPIC] [--only kafka-streams|quix|flink] [-- ARGS FOR EVERY PEER]
#
#   --input      default lms.activity.v1 (give the prefixed name if topics
#                were created with --prefix)
#   --expected   the number of records in the input topic (each peer exits once
#                it has processed and committed that many)
#   --output     default peer.daily.v1 (created if missing; each peer counts
#                only the records it wrote)
#   --only       run one peer
#   -- ARGS      passed to every peer, e.g. -- --tz -06:00 --grace 2h
#                --engagement rollcall --commit-interval-ms 1000
#
# Builds what is missing or stale first: the Kafka Streams and Flink jars
# (Maven) and the Quix virtualenv (quix/setup.sh). Each peer's full output is
# also kept in a log file, named at the end.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
brokers="" input="lms.activity.v1" output="peer.daily.v1" expected="" only=""
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --brokers) brokers="$2"; shift 2 ;;
    --input) input="$2"; shift 2 ;;
    --output) output="$2"; shift 2 ;;
    --expected) expected="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$brokers" ] || { echo "run.sh: --brokers is required" >&2; exit 2; }
[[ "$expected" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --expected N is required" >&2; exit 2; }
case "$only" in ""|kafka-streams|quix|flink) ;; *) echo "run.sh: --only kafka-streams|quix|flink" >&2; exit 2 ;; esac

jar="$here/kafka-streams/target/daily-engagement-kstreams.jar"
flink_jar="$here/flink/target/daily-engagement-flink.jar"
# build_jar DIR JAR LABEL: (re)builds DIR's Maven project unless JAR is newer
# than its pom.xml, its sources and the event schema.
build_jar() {
  local dir="$1" out="$2" label="$3" stale=0
  if [ ! -f "$out" ]; then
    stale=1
  elif [ -n "$(find "$dir/pom.xml" "$dir/src" \
      "$here/../../schemas/activity_event.avsc" -newer "$out" -print -quit)" ]; then
    stale=1
  fi
  if [ "$stale" = 1 ]; then
    echo "run.sh: building the $label peer (Maven)" >&2
    mvn -B -q -f "$dir/pom.xml" package >&2
  fi
}

logs="$(mktemp -d "${TMPDIR:-/tmp}/peers.XXXXXX")"
stamp="$(date +%Y%m%d%H%M%S)-$$"
results=()

run_peer() {
  local name="$1"; shift
  local log="$logs/$name.log"
  echo "run.sh: running $name" >&2
  # Progress lines to stderr as they come; the whole output kept in $log.
  if ! "$@" 2>&1 | tee "$log" >&2; then
    echo "run.sh: $name failed (log: $log)" >&2
    results+=("$name: FAILED (see $log)")
    return 0
  fi
  local last
  last="$(tail -n 1 "$log")"
  if [[ "$last" != "$name: "*" events in "*" s = "*" events/s" ]]; then
    results+=("$name: FAILED (see $log)")
  else
    results+=("$last")
  fi
}

if [ -z "$only" ] || [ "$only" = kafka-streams ]; then
  build_jar "$here/kafka-streams" "$jar" "Kafka Streams"
  run_peer kafka-streams java -jar "$jar" --brokers "$brokers" --input "$input" --output "$output" \
    --app-id "peer-kstreams-$stamp" --expected "$expected" "${extra[@]}"
fi
if [ -z "$only" ] || [ "$only" = quix ]; then
  "$here/quix/setup.sh"
  run_peer quix "$here/quix/.venv/bin/python" "$here/quix/daily_engagement.py" --brokers "$brokers" \
    --input "$input" --output "$output" --app-id "peer-quix-$stamp" --expected "$expected" "${extra[@]}"
fi
if [ -z "$only" ] || [ "$only" = flink ]; then
  build_jar "$here/flink" "$flink_jar" "Flink"
  run_peer flink java -jar "$flink_jar" --brokers "$brokers" --input "$input" --output "$output" \
    --app-id "peer-flink-$stamp" --expected "$expected" "${extra[@]}"
fi

echo "run.sh: logs in $logs" >&2
printf '%s\n' "${results[@]}"
case "${results[*]}" in *FAILED*) exit 1 ;; esac
