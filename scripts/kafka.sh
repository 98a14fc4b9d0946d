#!/usr/bin/env bash
# A real single-node Apache Kafka 4.x broker (KRaft: broker and controller in
# one JVM) on loopback, for tests. Its jars come from Maven Central through
# Maven (scripts/kafka/pom.xml); no Kafka tarball is downloaded.
#
#   scripts/kafka.sh start     start a broker; the LAST line of stdout is its
#                              bootstrap address, 127.0.0.1:PORT (progress
#                              goes to stderr). If this run dir's broker is
#                              already up, just print its address. On a paused
#                              run dir it starts afresh (new ports, empty data).
#   scripts/kafka.sh stop      stop the broker this run dir started (TERM, then
#                              KILL) and remove the run dir
#   scripts/kafka.sh pause     stop the broker this run dir started (TERM, then
#                              KILL after 30 s) but keep the run dir: data,
#                              server.properties, ports, address. status then
#                              says not running. A no-op if already paused.
#   scripts/kafka.sh resume    start the paused broker again from the same run
#                              dir: same server.properties (ports), same data
#                              (not re-formatted; ROLLCALL_KAFKA_PROPERTIES is
#                              not re-read); like start, the LAST line of
#                              stdout is its address, the same as before. Fails
#                              if there is no paused broker or a port is now
#                              taken. If it is running, just print its address.
#   scripts/kafka.sh restart   pause, then resume
#   scripts/kafka.sh status    print the address if running (exit 1 if not)
#   scripts/kafka.sh fetch     only fetch the jars (done by start when needed)
#   scripts/kafka.sh classpath print the classpath of the jars ("DIR/*")
#   scripts/kafka.sh tool CLASS ARGS...
#                              run a Kafka command-line class with those jars,
#                              logging WARN and above to stderr, e.g.
#     scripts/kafka.sh tool org.apache.kafka.tools.TopicCommand \
#       --bootstrap-server 127.0.0.1:PORT --create --topic t --partitions 3 \
#       --replication-factor 1
#
# Environment:
#   ROLLCALL_KAFKA_HOME  jar cache, shared by runs and clones
#                        (default $HOME/.cache/rollcall/kafka; jars in libs/)
#   ROLLCALL_KAFKA_RUN   this broker's run dir: pid, address, config, data,
#                        logs (default /tmp/rollcall-kafka). Give each
#                        concurrent broker its own.
#   ROLLCALL_KAFKA_PROPERTIES  extra server.properties lines, appended (win)
#   ROLLCALL_KAFKA_START_TIMEOUT  seconds start and resume wait for the
#                        broker (default 90)
#   ROLLCALL_KAFKA_KEEP_LOGS  a dir that stop copies the broker's logs into
#   KAFKA_HEAP_OPTS      broker heap (default -Xmx512m -Xms256m)
#   ROLLCALL_KAFKA_SECURE=1  start: also a SASL_SSL listener on a port of its
#                        own, beside the plaintext one (which stays the
#                        address printed last, and the inter-broker and
#                        controller listeners stay as they are). It makes a
#                        throwaway test CA and a certificate for
#                        127.0.0.1/localhost with openssl, enables
#                        SCRAM-SHA-512 and creates the SCRAM user `rollcall`
#                        with a random password as the storage is formatted.
#                        Where things are, in the run dir:
#                          secure_bootstrap   the SASL_SSL address, 127.0.0.1:PORT
#                          tls/ca.pem         the CA certificate (clients trust it)
#                          tls/sasl.user      the SCRAM user (rollcall)
#                          tls/sasl.password  its password (one line, mode 600)
#                        and start also says them on stderr (not the password).
#
# Run dir layout: broker.pid, bootstrap (the address), server.properties,
# log4j2.properties, data/ (log.dirs), logs/server.log (broker log),
# logs/kafka.out (the JVM's stdout/stderr), logs/format.log; with
# ROLLCALL_KAFKA_SECURE=1 also secure_bootstrap and tls/. A paused run
# dir has all of these but broker.pid; resume appends to the logs.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pom="$script_dir/kafka/pom.xml"
template="$script_dir/kafka/server.properties.template"
kafka_home="${ROLLCALL_KAFKA_HOME:-${HOME:-/root}/.cache/rollcall/kafka}"
libs="$kafka_home/libs"
tools_log4j="$kafka_home/log4j2-tools.properties"
run_dir="${ROLLCALL_KAFKA_RUN:-/tmp/rollcall-kafka}"
# Absolute, without trailing slashes: it is matched against the broker's
# command line and written into its configuration.
case "$run_dir" in /*) ;; *) run_dir="$PWD/$run_dir" ;; esac
while [ "${#run_dir}" -gt 1 ] && [ "${run_dir%/}" != "$run_dir" ]; do run_dir="${run_dir%/}"; done
pid_file="$run_dir/broker.pid"
addr_file="$run_dir/bootstrap"
marker="$run_dir/.rollcall-kafka"
start_timeout="${ROLLCALL_KAFKA_START_TIMEOUT:-90}"

say() { echo "kafka.sh: $*" >&2; }
die() { echo "kafka.sh: error: $*" >&2; exit 1; }

need() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' is not on PATH ($2)"
}

check_java() {
  need java "install a Java 17+ runtime, e.g. apt-get install openjdk-17-jre-headless"
  local v
  v="$(java -version 2>&1 | head -n 1)"
  if [[ "$v" =~ version\ \"([0-9]+)(\.([0-9]+))? ]]; then
    local major="${BASH_REMATCH[1]}"
    [ "$major" = 1 ] && major="${BASH_REMATCH[3]}"
    ((major >= 17)) || die "Kafka 4 needs Java 17 or newer; 'java' is: $v"
  else
    say "warning: cannot read the Java version from: $v"
  fi
}

# Serializes start, stop, pause and resume of one run dir (flock on the
# directory itself). The broker must not inherit the descriptor: see
# run_lock_fd in launch_broker. Taken once per process (restart calls it twice;
# a second flock on a new descriptor would wait for ourselves).
run_lock_fd=""
lock_run_dir() {
  [ -z "$run_lock_fd" ] || return 0
  command -v flock >/dev/null 2>&1 || return 0
  [ -d "$run_dir" ] || return 0
  exec {run_lock_fd}<"$run_dir"
  flock "$run_lock_fd"
}

pom_sum() { sha256sum "$pom" | cut -d' ' -f1; }

libs_current() {
  [ -f "$libs/.pom.sha256" ] && [ "$(cat "$libs/.pom.sha256")" = "$(pom_sum)" ] &&
    compgen -G "$libs/kafka_2.13-*.jar" >/dev/null
}

write_tools_log4j() {
  local tmp="$tools_log4j.tmp.$$"
  cat >"$tmp" <<'EOF'
# Kafka command-line tools: WARN and above to stderr, so stdout carries only
# the tool's own output (topic lists, consumed records).
status = error
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
EOF
  mv -f "$tmp" "$tools_log4j"
}

# Fetches the jars into $libs unless they are there for this very pom. A new
# set is built beside the old one and renamed into place; a lock keeps
# concurrent starts sharing the cache from fetching twice.
fetch() {
  need sha256sum "coreutils"
  mkdir -p "$kafka_home"
  if libs_current; then write_tools_log4j; return 0; fi
  local lock_fd
  if command -v flock >/dev/null 2>&1; then
    exec {lock_fd}>"$kafka_home/.fetch.lock"
    flock "$lock_fd"
    if libs_current; then write_tools_log4j; exec {lock_fd}>&-; return 0; fi
  fi
  need mvn "install Maven, e.g. apt-get install maven"
  check_java
  say "fetching the Kafka jars with Maven into $libs (first use or pom changed)"
  local tmp log sum
  sum="$(pom_sum)"
  tmp="$(mktemp -d "$kafka_home/libs.new.XXXXXX")"
  chmod 755 "$tmp"
  log="$kafka_home/fetch.log"
  if ! mvn -B -q -f "$pom" dependency:copy-dependencies \
      -DoutputDirectory="$tmp" >"$log" 2>&1; then
    rm -rf "$tmp"
    tail -n 40 "$log" >&2 || true
    die "Maven could not fetch the Kafka jars (full output: $log)"
  fi
  compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null ||
    { rm -rf "$tmp"; die "Maven ran but no kafka_2.13 jar arrived in $tmp (see $log)"; }
  echo "$sum" >"$tmp/.pom.sha256"
  if [ -d "$libs" ]; then
    local old
    old="$(mktemp -u "$kafka_home/libs.old.XXXXXX")"
    mv "$libs" "$old"
    mv "$tmp" "$libs"
    rm -rf "$old"
  else
    mv "$tmp" "$libs"
  fi
  write_tools_log4j
  if [ -n "${lock_fd:-}" ]; then exec {lock_fd}>&-; fi
  say "fetched $(find "$libs" -name '*.jar' | wc -l) jars ($(du -sh "$libs" | cut -f1))"
}

# True if $1 is a live broker started from this run dir (guards against a
# recycled pid: its command line must name our server.properties).
is_our_broker() {
  local pid="$1"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  local cmd
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmd" == *kafka.Kafka* && "$cmd" == *"$run_dir/server.properties"* ]]
}

running_pid() {
  [ -f "$pid_file" ] || return 1
  local pid
  pid="$(cat "$pid_file" 2>/dev/null || true)"
  is_our_broker "$pid" || return 1
  echo "$pid"
}

# Removes what start put in the run dir, then the dir itself if that leaves it
# empty (never a blanket rm -rf of a directory someone may have pointed us at).
clean_run_dir() {
  [ -d "$run_dir" ] || return 0
  if ! [ -f "$marker" ] && ! [ -f "$pid_file" ]; then
    rmdir "$run_dir" 2>/dev/null || true  # only if empty
    return 0
  fi
  rm -rf "$run_dir/data" "$run_dir/logs"
  rm -rf "$run_dir/tls"
  rm -f "$pid_file" "$addr_file" "$run_dir/server.properties" \
    "$run_dir/log4j2.properties" "$run_dir/secure_bootstrap" "$marker"
  rmdir "$run_dir" 2>/dev/null || say "left $run_dir in place: it holds files not made by kafka.sh"
}

# Prints $1 (default 2) free ports on 127.0.0.1.
free_ports() {
  need python3 "apt-get install python3"
  python3 - "${1:-2}" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

new_cluster_id() {
  python3 - <<'EOF'
import base64, os
while True:
    u = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    if not u.startswith("-"):
        print(u)
        break
EOF
}

# Exit 0 once the broker at 127.0.0.1:$1 answers ApiVersions and a Metadata
# request lists node 1 (the broker only opens its listener once it is
# unfenced, so this means it takes requests).
probe() {
  python3 - "$1" <<'EOF'
import socket, struct, sys

port = int(sys.argv[1])

def request(sock, api_key, version, corr, body):
    client = b"rollcall-probe"
    header = struct.pack(">hhih", api_key, version, corr, len(client)) + client
    msg = header + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", recv_exact(sock, 4))[0]
    data = recv_exact(sock, size)
    if struct.unpack(">i", data[:4])[0] != corr:
        raise RuntimeError("correlation id mismatch")
    return data[4:]

def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise RuntimeError("connection closed")
        buf += chunk
    return buf

try:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.settimeout(2)
        r = request(s, 18, 0, 1, b"")  # ApiVersions v0
        err, n = struct.unpack(">hi", r[:6])
        if err != 0:
            sys.exit(1)
        ranges = {}
        for i in range(n):
            k, lo, hi = struct.unpack(">hhh", r[6 + 6 * i: 12 + 6 * i])
            ranges[k] = (lo, hi)
        if 3 not in ranges:
            sys.exit(1)
        lo, hi = ranges[3]
        v = min(hi, 8)
        if v < max(lo, 4):
            sys.exit(0)  # no non-flexible Metadata version to speak; ApiVersions will do
        body = struct.pack(">i", 0) + b"\x00"  # no topics, no auto-create
        if v >= 8:
            body += b"\x00\x00"
        r = request(s, 3, v, 2, body)
        off = 4  # throttle_time_ms
        nb = struct.unpack(">i", r[off:off + 4])[0]
        off += 4
        nodes = []
        for _ in range(nb):
            node = struct.unpack(">i", r[off:off + 4])[0]
            off += 4
            hl = struct.unpack(">h", r[off:off + 2])[0]
            off += 2 + hl + 4
            rl = struct.unpack(">h", r[off:off + 2])[0]
            off += 2 + max(rl, 0)
            nodes.append(node)
        sys.exit(0 if 1 in nodes else 1)
except (OSError, RuntimeError, struct.error):
    sys.exit(1)
EOF
}

log_tail() {
  local f
  for f in "$run_dir/logs/server.log" "$run_dir/logs/kafka.out"; do
    if [ -s "$f" ]; then
      echo "----- last lines of $f -----" >&2
      tail -n 40 "$f" >&2
    fi
  done
}

# True while process $1 exists and is not a zombie.
alive() {
  local state
  state="$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)" || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# Stops our broker $1: TERM (a clean shutdown), then KILL after 30 s. Waits
# for the process itself to go, not just for its command line to change.
stop_pid() {
  local pid="$1" i
  is_our_broker "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 300; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  say "broker $pid still up 30 s after TERM; sending KILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  die "broker $pid survived KILL"
}

secure() { [ "${ROLLCALL_KAFKA_SECURE:-}" = 1 ]; }

# ROLLCALL_KAFKA_SECURE=1: a throwaway CA and a broker certificate for
# 127.0.0.1 and localhost (PEM, in $run_dir/tls), and the SCRAM user's
# password. The broker's key is PKCS#8, encrypted with a key password:
# Kafka reads a PEM key store file only with one.
make_tls() {
  need openssl "apt-get install openssl"
  local d="$run_dir/tls"
  rm -rf "$d"
  mkdir -p "$d"
  chmod 700 "$d"
  (
    cd "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=rollcall test CA" \
      -keyout ca.key -out ca.pem
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout broker.key -out broker.csr
    printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "extendedKeyUsage=serverAuth" >broker.ext
    openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
      -extfile broker.ext -out broker.crt
    openssl rand -hex 16 >key.password
    # (PBES1: the JVM's key factories do not read PBES2-encrypted keys.)
    openssl pkcs8 -topk8 -v1 PBE-SHA1-3DES -in broker.key \
      -passout "file:key.password" -out broker.key.enc
    cat broker.key.enc broker.crt ca.pem >broker-keystore.pem
    rm -f broker.key broker.csr broker.ext ca.srl
    echo rollcall >sasl.user
    (umask 077 && openssl rand -hex 16 >sasl.password)
  ) >"$run_dir/logs/tls.log" 2>&1 || { cat "$run_dir/logs/tls.log" >&2; die "making the test certificates in $d failed"; }
}

# The server.properties lines of the SASL_SSL listener on port $3 (beside
# the plaintext $1 and the controller $2); later lines win over the template's.
secure_config() {
  local port="$1" cport="$2" sport="$3" d="$run_dir/tls"
  cat <<EOF

# ROLLCALL_KAFKA_SECURE=1: a SASL_SSL listener (SCRAM-SHA-512) beside the plaintext one.
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport,SASL_SSL://127.0.0.1:$sport
advertised.listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport,SASL_SSL://127.0.0.1:$sport
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$d/broker-keystore.pem
listener.name.sasl_ssl.ssl.key.password=$(cat "$d/key.password")
listener.name.sasl_ssl.ssl.truststore.type=PEM
listener.name.sasl_ssl.ssl.truststore.location=$d/ca.pem
EOF
}

write_config() {
  local port="$1" cport="$2" line
  [ -f "$template" ] || die "missing $template"
  {
    while IFS= read -r line || [ -n "$line" ]; do
      line="${line//@BROKER_PORT@/$port}"
      line="${line//@CONTROLLER_PORT@/$cport}"
      line="${line//@LOG_DIR@/$run_dir/data}"
      printf '%s\n' "$line"
    done <"$template"
    if secure; then secure_config "$port" "$cport" "$sport"; fi
    if [ -n "${ROLLCALL_KAFKA_PROPERTIES:-}" ]; then
      echo
      echo "# from ROLLCALL_KAFKA_PROPERTIES"
      printf '%s\n' "$ROLLCALL_KAFKA_PROPERTIES"
    fi
  } >"$run_dir/server.properties"
  write_log4j
}

write_log4j() {
  cat >"$run_dir/log4j2.properties" <<EOF
# The broker's log: $run_dir/logs/server.log
status = error
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $run_dir/logs/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF
}

# One attempt at starting the broker on fresh ports and fresh data. Sets
# started=1 when it is up, started=0 when the ports were taken meanwhile
# (worth a retry), and dies on any other failure.
start_once() {
  started=0
  local port cport sport="" cluster_id
  local -a scram=()
  if secure; then
    read -r port cport sport < <(free_ports 3) || true
    [ -n "$sport" ] || die "could not pick free ports"
  else
    read -r port cport < <(free_ports) || true
  fi
  if [ -z "$port" ] || [ -z "$cport" ]; then die "could not pick free ports"; fi
  rm -rf "$run_dir/data" "$run_dir/logs"
  rm -f "$pid_file" "$addr_file" "$run_dir/secure_bootstrap"
  mkdir -p "$run_dir/data" "$run_dir/logs"
  : >"$marker"
  if secure; then
    make_tls
    scram=(--add-scram "SCRAM-SHA-512=[name=$(cat "$run_dir/tls/sasl.user"),password=$(cat "$run_dir/tls/sasl.password")]")
  fi
  write_config "$port" "$cport"

  cluster_id="$(new_cluster_id)"
  if ! java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
      -Dlog4j2.configurationFile="$tools_log4j" -cp "$libs/*" \
      kafka.tools.StorageTool format -t "$cluster_id" \
      -c "$run_dir/server.properties" --standalone ${scram[@]+"${scram[@]}"} \
      >"$run_dir/logs/format.log" 2>&1; then
    cat "$run_dir/logs/format.log" >&2
    die "formatting the storage in $run_dir/data failed"
  fi

  launch_broker "$port" "$cport"
  if [ "$started" = 1 ] && secure; then
    echo "127.0.0.1:$sport" >"$run_dir/secure_bootstrap"
  fi
  if [ "$started" = 0 ]; then
    say "port $port or $cport was taken meanwhile; retrying on others"
  fi
}

# Size in bytes of file $1, 0 if it does not exist.
file_size() {
  if [ -f "$1" ]; then wc -c <"$1"; else echo 0; fi
}

# Launches the broker on $run_dir/server.properties (listener port $1,
# controller port $2, storage already formatted) and waits until it answers.
# Sets started=1 when it is up (and writes the address file), started=0 when
# it exited because a port was taken, and dies on any other failure. Appends
# to the logs; only what this launch writes counts as a port clash.
launch_broker() {
  started=0
  local port="$1" cport="$2" pid i
  local out_from log_from
  out_from="$(file_size "$run_dir/logs/kafka.out")"
  log_from="$(file_size "$run_dir/logs/server.log")"
  rm -f "$pid_file"

  local heap="${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m}"
  # The wrapper records its own pid (exec keeps it for java) and closes the
  # run dir's lock so that the broker does not hold it.
  # shellcheck disable=SC2016,SC2086 # $$ is the wrapper's; heap is several options
  nohup setsid bash -c '
    echo $$ >"$1"
    if [[ "$2" =~ ^[0-9]+$ ]]; then eval "exec $2<&-"; fi
    shift 2
    exec "$@"' _ "$pid_file" "$run_lock_fd" \
    java $heap -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
    -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$run_dir/log4j2.properties" \
    -cp "$libs/*" kafka.Kafka "$run_dir/server.properties" \
    </dev/null >>"$run_dir/logs/kafka.out" 2>&1 &
  local launcher=$!

  for ((i = 0; i < 50; i++)); do
    [ -s "$pid_file" ] && break
    sleep 0.1
  done
  pid="$(cat "$pid_file" 2>/dev/null || true)"
  [ -n "$pid" ] || { log_tail; die "the broker did not start (no pid from launcher $launcher)"; }
  say "broker pid $pid, listener 127.0.0.1:$port, controller 127.0.0.1:$cport; waiting up to ${start_timeout}s"

  local deadline=$((SECONDS + start_timeout))
  while ((SECONDS < deadline)); do
    if ! is_our_broker "$pid"; then
      # (not a pipe: under pipefail a tail killed by grep -q's early exit
      # would turn a match into a failure)
      if grep -qs -e 'Address already in use' -e 'BindException' \
          <(tail -c +$((log_from + 1)) "$run_dir/logs/server.log" 2>/dev/null || true
            tail -c +$((out_from + 1)) "$run_dir/logs/kafka.out" 2>/dev/null || true); then
        return 0
      fi
      log_tail
      die "the broker exited during startup (logs in $run_dir/logs)"
    fi
    if probe "$port"; then
      echo "127.0.0.1:$port" >"$addr_file"
      started=1
      return 0
    fi
    sleep 0.25
  done
  log_tail
  stop_pid "$pid" || true
  die "the broker did not answer on 127.0.0.1:$port within ${start_timeout}s (logs in $run_dir/logs)"
}

cmd_start() {
  local pid
  mkdir -p "$run_dir"
  lock_run_dir
  if pid="$(running_pid)"; then
    if [ -s "$addr_file" ]; then
      say "already running (pid $pid) for $run_dir"
      cat "$addr_file"
      return 0
    fi
    say "a broker (pid $pid) of $run_dir is running but has no address; stopping it"
    stop_pid "$pid"
  fi
  need python3 "apt-get install python3"
  need setsid "util-linux"
  check_java
  fetch
  mkdir -p "$run_dir"
  local attempt started=0
  for attempt in 1 2 3; do
    start_once
    if [ "$started" = 1 ]; then
      say "Kafka broker up at $(cat "$addr_file") (run dir $run_dir)"
      if secure; then
        say "SASL_SSL (SCRAM-SHA-512) at $(cat "$run_dir/secure_bootstrap"): CA $run_dir/tls/ca.pem, user $(cat "$run_dir/tls/sasl.user"), password in $run_dir/tls/sasl.password"
      fi
      cat "$addr_file"
      return 0
    fi
  done
  log_tail
  die "could not bind free ports after $attempt attempts"
}

cmd_stop() {
  local pid
  lock_run_dir
  if pid="$(running_pid)"; then
    say "stopping broker pid $pid"
    stop_pid "$pid"
  else
    say "no broker of $run_dir is running"
  fi
  if [ -n "${ROLLCALL_KAFKA_KEEP_LOGS:-}" ] && [ -d "$run_dir/logs" ]; then
    mkdir -p "$ROLLCALL_KAFKA_KEEP_LOGS"
    cp -p "$run_dir"/logs/* "$ROLLCALL_KAFKA_KEEP_LOGS"/ 2>/dev/null || true
    say "kept the broker's logs in $ROLLCALL_KAFKA_KEEP_LOGS"
  fi
  clean_run_dir
}

# The value of property $1 (a regex, dots escaped) in this run dir's
# server.properties: the last line that sets it wins, as in Kafka.
prop() {
  sed -n "s/^[[:space:]]*$1[[:space:]]*[=:][[:space:]]*//p" "$run_dir/server.properties" |
    tail -n 1 | sed 's/[[:space:]]*$//'
}

# Dies unless $run_dir holds a broker that resume can start again: the
# server.properties start wrote, formatted storage in its log.dirs, and the
# address file.
check_paused() {
  local why="no paused broker in $run_dir" dirs d addr
  local -a dir_list
  [ -d "$run_dir" ] || die "$why: no such directory (start one with: $0 start)"
  [ -f "$run_dir/server.properties" ] || die "$why: it has no server.properties"
  dirs="$(prop 'log\.dirs')"
  [ -n "$dirs" ] || die "$why: its server.properties sets no log.dirs"
  IFS=, read -ra dir_list <<<"$dirs"
  for d in "${dir_list[@]}"; do
    [ -f "$d/meta.properties" ] ||
      die "$why: its data dir $d holds no formatted storage (no meta.properties)"
  done
  addr="$(cat "$addr_file" 2>/dev/null || true)"
  [[ "$addr" =~ ^127\.0\.0\.1:[0-9]+$ ]] || die "$why: no address in $addr_file"
}

# Prints those of the ports $@ on 127.0.0.1 that something else now holds
# (binds as the broker will: with SO_REUSEADDR, so the old broker's TIME_WAIT
# connections do not count).
ports_taken() {
  python3 - "$@" <<'EOF'
import socket, sys
for p in sys.argv[1:]:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", int(p)))
    except OSError:
        print(p)
    finally:
        s.close()
EOF
}

cmd_pause() {
  local pid
  [ -d "$run_dir" ] || die "no broker to pause: $run_dir does not exist"
  lock_run_dir
  if pid="$(running_pid)"; then
    say "pausing broker pid $pid (keeping $run_dir)"
    stop_pid "$pid"
    rm -f "$pid_file"
    check_paused
    say "paused; resume it with: ROLLCALL_KAFKA_RUN=$run_dir $0 resume"
  else
    check_paused
    rm -f "$pid_file"
    say "no broker of $run_dir is running; already paused"
  fi
}

cmd_resume() {
  local pid
  [ -d "$run_dir" ] || die "no paused broker in $run_dir: no such directory (start one with: $0 start)"
  lock_run_dir
  if pid="$(running_pid)"; then
    if [ -s "$addr_file" ]; then
      say "already running (pid $pid) for $run_dir"
      cat "$addr_file"
      return 0
    fi
    die "a broker (pid $pid) of $run_dir is running but has no address; stop it"
  fi
  check_paused
  need python3 "apt-get install python3"
  need setsid "util-linux"
  check_java
  fetch

  local addr port cport="" listeners p taken
  local -a ports
  addr="$(cat "$addr_file")"
  port="${addr##*:}"
  listeners="$(prop listeners)"
  mapfile -t ports < <(grep -oE ':[0-9]+' <<<"$listeners" | tr -d : | sort -un)
  for p in "${ports[@]}"; do [ "$p" = "$port" ] || cport="$p"; done
  [[ ",$listeners," == *"//127.0.0.1:$port,"* ]] ||
    die "$addr_file says $addr, but server.properties has listeners=$listeners"
  taken="$(ports_taken "${ports[@]}")"
  if [ -n "$taken" ]; then
    die "cannot resume: port(s) ${taken//$'\n'/ } of the paused broker (listeners=$listeners) are now taken by another process; free them and resume, or stop and start afresh (new ports, empty data)"
  fi

  [ -f "$run_dir/log4j2.properties" ] || write_log4j
  mkdir -p "$run_dir/logs"
  echo "===== kafka.sh resume $(date '+%Y-%m-%d %H:%M:%S') =====" >>"$run_dir/logs/kafka.out"
  local started=0
  launch_broker "$port" "${cport:-?}"
  if [ "$started" = 1 ]; then
    say "Kafka broker up again at $(cat "$addr_file") (run dir $run_dir)"
    cat "$addr_file"
    return 0
  fi
  log_tail
  rm -f "$pid_file"
  die "cannot resume: port $port or ${cport:-?} was taken by another process as the broker started; free it and resume, or stop and start afresh"
}

cmd_restart() {
  [ -d "$run_dir" ] || die "no broker to restart: $run_dir does not exist"
  lock_run_dir  # held across both steps
  cmd_pause
  cmd_resume
}

cmd_status() {
  local pid
  if pid="$(running_pid)" && [ -s "$addr_file" ]; then
    cat "$addr_file"
  else
    say "not running ($run_dir)"
    return 1
  fi
}

cmd_tool() {
  [ $# -ge 1 ] || die "usage: $0 tool CLASS [ARGS...]"
  check_java
  fetch
  local class="$1"
  shift
  exec java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$tools_log4j" -cp "$libs/*" "$class" "$@"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  pause) cmd_pause ;;
  resume) cmd_resume ;;
  restart) cmd_restart ;;
  fetch) check_java; fetch ;;
  classpath) fetch; echo "$libs/*" ;;
  tool) shift; cmd_tool "$@" ;;
  *)
    echo "usage: $0 start|stop|pause|resume|restart|status|fetch|classpath|tool CLASS [ARGS...]" >&2
    exit 2
    ;;
esac
