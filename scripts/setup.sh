#!/usr/bin/env bash
# Installs what building rollcall needs beyond a Rust toolchain: libclang
# (RocksDB's bindings are generated at build time), a C++ compiler, cmake,
# the curl and OpenSSL headers librdkafka's build wants (with pkg-config);
# and promtool, PostgreSQL and Chromium for the tests.
# Safe to run again: it installs only what is missing.
set -euo pipefail

need=()
ldconfig -p 2>/dev/null | grep -q 'libclang[-.0-9]*\.so' || need+=(libclang-dev)
command -v c++ >/dev/null || need+=(g++)
command -v cmake >/dev/null || need+=(cmake)
# librdkafka (built from source by rdkafka's cmake-build) finds curl and
# compiles it in; without the headers its build stops.
[ -e /usr/include/x86_64-linux-gnu/curl/curl.h ] || [ -e /usr/include/curl/curl.h ] || need+=(libcurl4-openssl-dev)
# Kafka over TLS (rdkafka's ssl feature) links the system OpenSSL through
# openssl-sys, which finds it with pkg-config.
[ -e /usr/include/openssl/ssl.h ] || need+=(libssl-dev)
command -v pkg-config >/dev/null || need+=(pkg-config)
# The security tests' broker (ROLLCALL_KAFKA_SECURE=1 scripts/kafka.sh) makes its
# throwaway CA and certificates with the openssl command.
command -v openssl >/dev/null || need+=(openssl)
# tests/https.rs reads the HTTPS endpoints with curl --cacert.
command -v curl >/dev/null || need+=(curl)
# promtool checks and unit-tests the Prometheus files in deploy/ (tests/deploy.rs);
# Debian ships it in the prometheus package.
command -v promtool >/dev/null || need+=(prometheus)
# docker-compose.yml is validated by `docker compose config` (tests/deploy.rs);
# Debian's docker-compose does that on the client, with no Docker engine.
docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null || need+=(docker-compose)
# The sink's tests (tests/sink.rs) run a throwaway PostgreSQL cluster with
# scripts/postgres.sh, from Debian's postgresql package (initdb, pg_ctl).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null || need+=(postgresql)
# The report pages are checked in headless Chromium over the DevTools
# protocol (tests/support/browser.rs, tests/reports.rs).
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || need+=(chromium)
command -v cargo >/dev/null || { echo "setup: cargo is not on PATH; install Rust (rustup) first" >&2; exit 1; }

if ((${#need[@]})); then
  echo "setup: installing ${need[*]} with apt-get"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  # No recommends: docker-compose would bring a Docker engine, prometheus its node exporter.
  # (postgresql's package starts a cluster of its own on port 5432; the tests
  # make their own with scripts/postgres.sh and leave that one alone.)
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The prometheus package is here for promtool only: leave no Prometheus
  # server (nor the node exporter it recommends) running or starting at boot.
  if [[ " ${need[*]} " == *" prometheus "* ]]; then
    for svc in prometheus prometheus-node-exporter; do
      if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
        $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
      elif [ -x "/etc/init.d/$svc" ]; then
        $SUDO "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
      fi
    done
  fi
fi
echo "setup: build dependencies present"
