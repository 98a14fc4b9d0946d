#!/usr/bin/env bash
# A real Confluent-compatible schema registry on loopback, for tests and the
# Confluent wire format: Apicurio Registry 3.3.3 (its Confluent API is at
# <url>/apis/ccompat/v7), from Maven Central through Maven on first use.
#
#   scripts/registry.sh start   start a registry; the LAST line of stdout is its
#                               Confluent-API base URL,
#                               http://127.0.0.1:PORT/apis/ccompat/v7 (progress
#                               goes to stderr). If this run dir's registry is
#                               up already, just print its URL.
#   scripts/registry.sh stop    stop the registry this run dir started (TERM,
#                               then KILL) and remove the run dir
#   scripts/registry.sh status  print the URL if running (exit 1 if not)
#   scripts/registry.sh fetch   only fetch the distribution
#
# Storage is in memory: a start is an empty registry. Global compatibility is
# BACKWARD, as Confluent's default (Apicurio's own default is NONE).
#
# Environment:
#   ROLLCALL_REGISTRY_HOME  distribution cache (default
#                           $HOME/.cache/rollcall/registry)
#   ROLLCALL_REGISTRY_RUN   this registry's run dir: pid, url, logs (default
#                           /tmp/rollcall-registry). Give each concurrent
#                           registry its own.
#   ROLLCALL_REGISTRY_JAVA  the java to run it with (Java 21 or newer; by
#                           default `java` if it is new enough, else the
#                           newest JDK under /usr/lib/jvm)
#   ROLLCALL_REGISTRY_START_TIMEOUT  seconds start waits (default 90)
set -euo pipefail

version=3.3.3
artifact="io.apicurio:apicurio-registry-app:$version:tar.gz:all"
home="${ROLLCALL_REGISTRY_HOME:-${HOME:-/root}/.cache/rollcall/registry}"
dist="$home/apicurio-registry-$version"
run_dir="${ROLLCALL_REGISTRY_RUN:-/tmp/rollcall-registry}"
case "$run_dir" in /*) ;; *) run_dir="$PWD/$run_dir" ;; esac
while [ "${#run_dir}" -gt 1 ] && [ "${run_dir%/}" != "$run_dir" ]; do run_dir="${run_dir%/}"; done
pid_file="$run_dir/registry.pid"
url_file="$run_dir/url"
marker="$run_dir/.rollcall-registry"
start_timeout="${ROLLCALL_REGISTRY_START_TIMEOUT:-90}"

say() { echo "registry.sh: $*" >&2; }
die() { echo "registry.sh: error: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' is not on PATH ($2)"; }

# The major version of java binary $1 (empty when it cannot be read).
java_major() {
  local v
  v="$("$1" -version 2>&1 | head -n 1)" || return 0
  if [[ "$v" =~ version\ \"([0-9]+)(\.([0-9]+))? ]]; then
    local major="${BASH_REMATCH[1]}"
    [ "$major" = 1 ] && major="${BASH_REMATCH[3]}"
    echo "$major"
  fi
}

# Sets $java to a Java 21+ binary: the registry's class files are version 65.
pick_java() {
  local candidate major
  if [ -n "${ROLLCALL_REGISTRY_JAVA:-}" ]; then
    java="$ROLLCALL_REGISTRY_JAVA"
    major="$(java_major "$java")"
    [ -n "$major" ] && ((major >= 21)) || die "ROLLCALL_REGISTRY_JAVA=$java is not Java 21 or newer"
    return 0
  fi
  for candidate in "$(command -v java 2>/dev/null || true)" /usr/lib/jvm/temurin-25-jdk-amd64/bin/java \
      $(ls -d /usr/lib/jvm/*/bin/java 2>/dev/null | sort -rV); do
    [ -n "$candidate" ] && [ -x "$candidate" ] || continue
    major="$(java_major "$candidate")"
    if [ -n "$major" ] && ((major >= 21)); then
      java="$candidate"
      return 0
    fi
  done
  die "Apicurio Registry $version needs Java 21 or newer and none was found (java is: $(java -version 2>&1 | head -n 1)); install one (e.g. a Temurin 21+ JDK) or set ROLLCALL_REGISTRY_JAVA"
}

# Fetches and unpacks the distribution into $dist unless it is there. Built
# beside and renamed into place; a lock keeps concurrent starts from fetching twice.
fetch() {
  [ -f "$dist/quarkus-run.jar" ] && return 0
  mkdir -p "$home"
  local lock_fd tmp log
  if command -v flock >/dev/null 2>&1; then
    exec {lock_fd}>"$home/.fetch.lock"
    flock "$lock_fd"
    if [ -f "$dist/quarkus-run.jar" ]; then exec {lock_fd}>&-; return 0; fi
  fi
  need mvn "install Maven, e.g. apt-get install maven"
  say "fetching Apicurio Registry $version with Maven into $dist (first use; about 160 MB)"
  tmp="$(mktemp -d "$home/dist.new.XXXXXX")"
  log="$home/fetch.log"
  if ! mvn -B -q org.apache.maven.plugins:maven-dependency-plugin:3.8.1:unpack \
      -Dartifact="$artifact" -DoutputDirectory="$tmp" >"$log" 2>&1; then
    rm -rf "$tmp"
    tail -n 40 "$log" >&2 || true
    die "Maven could not fetch $artifact (full output: $log)"
  fi
  [ -f "$tmp/quarkus-run.jar" ] || { rm -rf "$tmp"; die "Maven ran but $tmp has no quarkus-run.jar (see $log)"; }
  rm -rf "$dist"
  mv "$tmp" "$dist"
  if [ -n "${lock_fd:-}" ]; then exec {lock_fd}>&-; fi
  say "fetched ($(du -sh "$dist" | cut -f1))"
}

free_ports() {
  need python3 "apt-get install python3"
  python3 - <<'EOF'
import socket
socks = []
for _ in range(2):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

alive() {
  local state
  state="$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)" || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# True if $1 is a live registry started from this run dir (guards against a
# recycled pid: its command line must name this run dir).
is_ours() {
  local pid="$1" cmd
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmd" == *quarkus-run.jar* && "$cmd" == *"-Drollcall.run=$run_dir "* ]]
}

running_pid() {
  [ -f "$pid_file" ] || return 1
  local pid
  pid="$(cat "$pid_file" 2>/dev/null || true)"
  is_ours "$pid" || return 1
  echo "$pid"
}

stop_pid() {
  local pid="$1" i
  is_ours "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 300; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  say "registry $pid still up 30 s after TERM; sending KILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  die "registry $pid survived KILL"
}

log_tail() {
  [ -s "$run_dir/registry.log" ] || return 0
  echo "----- last lines of $run_dir/registry.log -----" >&2
  tail -n 40 "$run_dir/registry.log" >&2
}

# One attempt on fresh ports: started=1 when up, 0 when a port was taken meanwhile.
start_once() {
  started=0
  local port mport pid i
  read -r port mport < <(free_ports) || true
  [ -n "$port" ] && [ -n "$mport" ] || die "could not pick free ports"
  rm -f "$pid_file" "$url_file"
  : >"$run_dir/registry.log"
  # The wrapper records its own pid (exec keeps it for java). The run dir on
  # the command line is how stop knows the process is ours.
  # shellcheck disable=SC2016
  nohup setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$pid_file" \
    "$java" -Xmx512m -XX:+UseSerialGC -Djava.io.tmpdir="$run_dir/tmp" "-Drollcall.run=$run_dir" \
    -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$port" \
    -Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port="$mport" \
    -Dapicurio.rules.global.compatibility=BACKWARD \
    -jar "$dist/quarkus-run.jar" </dev/null >>"$run_dir/registry.log" 2>&1 &
  for ((i = 0; i < 50; i++)); do
    [ -s "$pid_file" ] && break
    sleep 0.1
  done
  pid="$(cat "$pid_file" 2>/dev/null || true)"
  [ -n "$pid" ] || die "the registry did not start (no pid)"
  say "registry pid $pid, API 127.0.0.1:$port, management 127.0.0.1:$mport; waiting up to ${start_timeout}s"
  local deadline=$((SECONDS + start_timeout))
  while ((SECONDS < deadline)); do
    if ! is_ours "$pid"; then
      if grep -qs -e 'Address already in use' -e 'BindException' "$run_dir/registry.log"; then return 0; fi
      log_tail
      die "the registry exited during startup (log: $run_dir/registry.log)"
    fi
    if curl -fsS -o /dev/null "http://127.0.0.1:$mport/health/ready" 2>/dev/null &&
        curl -fsS -o /dev/null "http://127.0.0.1:$port/apis/ccompat/v7/subjects" 2>/dev/null; then
      echo "http://127.0.0.1:$port/apis/ccompat/v7" >"$url_file"
      started=1
      return 0
    fi
    sleep 0.25
  done
  log_tail
  stop_pid "$pid" || true
  die "the registry was not ready on 127.0.0.1:$port within ${start_timeout}s (log: $run_dir/registry.log)"
}

cmd_start() {
  local pid
  mkdir -p "$run_dir"
  if pid="$(running_pid)" && [ -s "$url_file" ]; then
    say "already running (pid $pid) for $run_dir"
    cat "$url_file"
    return 0
  fi
  need setsid "util-linux"
  need curl "apt-get install curl"
  pick_java
  fetch
  mkdir -p "$run_dir/tmp"
  : >"$marker"
  local attempt started=0
  for attempt in 1 2 3; do
    start_once
    if [ "$started" = 1 ]; then
      say "Apicurio Registry $version up at $(cat "$url_file") (run dir $run_dir)"
      cat "$url_file"
      return 0
    fi
    say "a port was taken meanwhile; retrying on others"
  done
  log_tail
  die "could not bind free ports after $attempt attempts"
}

cmd_stop() {
  local pid
  if pid="$(running_pid)"; then
    say "stopping registry pid $pid"
    stop_pid "$pid"
  else
    say "no registry of $run_dir is running"
  fi
  [ -d "$run_dir" ] || return 0
  if [ -f "$marker" ]; then
    rm -rf "$run_dir/tmp"
    rm -f "$pid_file" "$url_file" "$run_dir/registry.log" "$marker"
  fi
  rmdir "$run_dir" 2>/dev/null || say "left $run_dir in place: it holds files not made by registry.sh"
}

cmd_status() {
  local pid
  if pid="$(running_pid)" && [ -s "$url_file" ]; then
    cat "$url_file"
  else
    say "not running ($run_dir)"
    return 1
  fi
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  fetch) fetch ;;
  *)
    echo "usage: $0 start|stop|status|fetch" >&2
    exit 2
    ;;
esac
