#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on loopback, for tests of the sink
# (`rollcall sink postgres`). Uses Debian's postgresql package (initdb and
# pg_ctl from /usr/lib/postgresql/*/bin); scripts/setup.sh installs it.
#
#   scripts/postgres.sh start   initdb a cluster in the run dir, start it on a
#                               free loopback port; the LAST line of stdout is
#                               the database URL,
#                               postgres://rollcall@127.0.0.1:PORT/rollcall
#                               (progress goes to stderr). If this run dir's
#                               server is already up, just print its URL.
#   scripts/postgres.sh stop    stop the server this run dir started (fast
#                               shutdown, then immediate) and remove the run dir
#   scripts/postgres.sh status  print the URL if running (exit 1 if not)
#
# The cluster has one superuser, `rollcall`, with trust authentication on
# loopback only (no password), and a database `rollcall`. fsync is off: the
# tests kill clients, never the server, and a throwaway cluster needs no
# durability across a machine crash.
#
# As root, initdb refuses to run; the cluster is then made and run as the
# `postgres` user (created by Debian's package), which owns the run dir.
#
# Environment:
#   ROLLCALL_PG_RUN   this cluster's run dir: data/, logs/, url, port
#                     (default /tmp/rollcall-postgres). Give each concurrent
#                     cluster its own.
#   ROLLCALL_PG_BIN   the directory of initdb and pg_ctl (default: the newest
#                     /usr/lib/postgresql/*/bin, else PATH)
set -euo pipefail

run_dir="${ROLLCALL_PG_RUN:-/tmp/rollcall-postgres}"
case "$run_dir" in /*) ;; *) run_dir="$PWD/$run_dir" ;; esac
while [ "${#run_dir}" -gt 1 ] && [ "${run_dir%/}" != "$run_dir" ]; do run_dir="${run_dir%/}"; done
data="$run_dir/data"
url_file="$run_dir/url"
marker="$run_dir/.rollcall-postgres"

say() { echo "postgres.sh: $*" >&2; }
die() { echo "postgres.sh: error: $*" >&2; exit 1; }

bin_dir() {
  if [ -n "${ROLLCALL_PG_BIN:-}" ]; then echo "$ROLLCALL_PG_BIN"; return; fi
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return; fi
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return; }
  die "no initdb: install Debian's postgresql package (scripts/setup.sh does)"
}

# Runs a PostgreSQL program as the cluster's owner: as root, the postgres user.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg() { local b; b="$(bin_dir)"; as_owner "$b/$1" "${@:2}"; }

running() {
  [ -f "$marker" ] && [ -f "$data/postmaster.pid" ] || return 1
  pg pg_ctl -D "$data" status >/dev/null 2>&1
}

port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
  if running; then
    say "already running"
    cat "$url_file"
    return 0
  fi
  [ -e "$run_dir" ] && [ ! -f "$marker" ] && [ -n "$(ls -A "$run_dir" 2>/dev/null)" ] &&
    die "$run_dir exists and was not made by postgres.sh; choose another ROLLCALL_PG_RUN"
  rm -rf "$data" "$run_dir/logs"
  mkdir -p "$run_dir/logs"
  touch "$marker"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root needs the postgres user (Debian's postgresql package makes it)"
    chown -R postgres: "$run_dir"
    # The owner must be able to reach the run dir through its parents.
    chmod o+x "$(dirname "$run_dir")" 2>/dev/null || true
  fi
  say "initdb in $data ($(bin_dir))"
  pg initdb -D "$data" -U rollcall -A trust -E UTF8 --locale=C.UTF-8 --no-sync >"$run_dir/logs/initdb.log" 2>&1 ||
    { tail -n 20 "$run_dir/logs/initdb.log" >&2; die "initdb failed"; }
  local port tries=0
  while :; do
    port=$((20000 + RANDOM % 30000))
    if port_free "$port"; then
      if pg pg_ctl -D "$data" -l "$run_dir/logs/postgres.log" -w -t 60 \
          -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$run_dir -c fsync=off -c full_page_writes=off -c max_connections=200" \
          start >/dev/null 2>&1; then
        break
      fi
    fi
    tries=$((tries + 1))
    ((tries < 10)) || { tail -n 20 "$run_dir/logs/postgres.log" >&2 || true; die "could not start PostgreSQL"; }
  done
  pg createdb -h 127.0.0.1 -p "$port" -U rollcall rollcall || die "createdb failed"
  echo "postgres://rollcall@127.0.0.1:$port/rollcall" >"$url_file"
  echo "$port" >"$run_dir/port"
  say "PostgreSQL on 127.0.0.1:$port (run dir $run_dir)"
  cat "$url_file"
}

stop() {
  [ -f "$marker" ] || { say "nothing started in $run_dir"; return 0; }
  if [ -f "$data/postmaster.pid" ]; then
    pg pg_ctl -D "$data" -m fast -w -t 20 stop >/dev/null 2>&1 || pg pg_ctl -D "$data" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$data" "$run_dir/logs" "$url_file" "$run_dir/port" "$marker"
  rm -f "$run_dir"/.s.PGSQL.* 2>/dev/null || true
  rmdir "$run_dir" 2>/dev/null || say "left $run_dir in place: it holds files not made by postgres.sh"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if running; then cat "$url_file"; else exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
