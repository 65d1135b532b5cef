#!/usr/bin/env bash
# `make bench`: release builds, then the benchmarks against the local stack.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --bins
# Extraction throughput and the sandboxed reader's peak memory (no services needed).
cargo run --release --quiet -p chatpad-shared --bin chatpad-extract-bench
infra/with-services.sh bash -c 'cargo run --release --quiet -p chatpad-shared --bin chatpad-migrate && cargo run --release --quiet -p chatpad-shared --bin chatpad-dev-seed && .venv/bin/python infra/bench.py'
