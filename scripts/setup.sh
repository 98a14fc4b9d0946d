#!/usr/bin/env bash
# Installs what building rollcall needs beyond a Rust toolchain: libclang
# (RocksDB's bindings are generated at build time), a C++ compiler, cmake and
# the curl headers librdkafka's build wants.
# Safe to run again: it installs only what is missing.
set -euo pipefail

need=()
ldconfig -p 2>/dev/null | grep -q 'libclang[-.0-9]*\.so' || need+=(libclang-dev)
command -v c++ >/dev/null || need+=(g++)
command -v cmake >/dev/null || need+=(cmake)
# librdkafka (built from source by rdkafka's cmake-build) finds curl and
# compiles it in; without the headers its build stops.
[ -e /usr/include/x86_64-linux-gnu/curl/curl.h ] || [ -e /usr/include/curl/curl.h ] || need+=(libcurl4-openssl-dev)
command -v cargo >/dev/null || { echo "setup: cargo is not on PATH; install Rust (rustup) first" >&2; exit 1; }

if ((${#need[@]})); then
  echo "setup: installing ${need[*]} with apt-get"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
echo "setup: build dependencies present"
