#!/usr/bin/env bash
# The whole test suite: unit and integration tests of every crate, then every
# scenario (the project's own and, when the shared examples sit beside the
# repository, those too) through the `rollcall scenario check` command.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
echo "test: building (release profile; RocksDB's C++ takes ~10 minutes on a cold target directory)"
cargo build --release --workspace --all-targets
cargo test --release --workspace

dirs=(tests/scenarios)
[ -d ../shared/scenarios ] && dirs+=(../shared/scenarios)
cargo run --release -q -- scenario check "${dirs[@]}"
