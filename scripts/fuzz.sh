#!/usr/bin/env bash
# Fuzzes the decoders of outside input: `scripts/fuzz.sh [TARGET] [SECONDS]`
# runs one target of fuzz/fuzz_targets/ (default: each in turn) for SECONDS
# each (default 60), printing libFuzzer's progress as it goes.
#
# Needs a nightly toolchain (cargo-fuzz builds with sanitizer flags that
# stable refuses); installs cargo-fuzz from crates.io when it is missing.
# Inputs found on the way go to fuzz/work/TARGET/ (not checked in); the
# seeds in fuzz/corpus/TARGET/ are only read. A failing input is saved
# under fuzz/artifacts/TARGET/: fix the decoder, then keep the input in
# fuzz/regressions/TARGET/, where the crates' fuzz_corpus tests replay it
# on the stable toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

target="${1:-all}"
seconds="${2:-60}"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz: no nightly toolchain; install one with: rustup toolchain install nightly" >&2
  exit 1
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi
# Outside the clone, so that a new clone does not rebuild everything.
export CARGO_TARGET_DIR="${ROLLCALL_FUZZ_TARGET_DIR:-$HOME/.cache/rollcall/fuzz-target}"

if [ "$target" = all ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
else
  targets=("$target")
fi

for t in "${targets[@]}"; do
  echo "fuzz: $t for ${seconds}s"
  mkdir -p "fuzz/work/$t"
  cargo +nightly fuzz run "$t" "fuzz/work/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1
done
