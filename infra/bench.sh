#!/usr/bin/env bash
# `make bench`: release builds, then the benchmarks against the local stack.
#   0. the widget's gzipped bundle sizes (built by `make widget`);
#   1. functions: binary size, cold start, memory, latency (infra/bench.py), and webhook
#      delivery throughput and latency (webhook-worker's example webhook-bench);
#   2. realtime: human message -> visitor latency through the dev WebSocket gateway, fan-out
#      of one event to 1,000 connections (infra/realtime_check.py bench);
#   3. knowledge: extraction + chunking throughput and the sandbox's peak memory
#      (chatpad-extract-bench), PDF text quality (infra/pdf_quality.py), embedding throughput (chatpad-embed-bench), chunking throughput
#      (chatpad-chunk-bench), retrieval quality on aws-docs-qa (chatpad-retrieval-bench, also
#      forced onto the large-agent paths) and
#      agent-filtered vector search at scale (chatpad-vector-bench);
#   4. chat: widget-chat server overhead (100k chunks, then 20k: the largest agent still
#      ranked exactly) and time to first streamed byte (examples/chat-bench),
#      get-widget-config requests/s (examples/config-bench).
# BENCH_VECTOR_ARGS sizes the vector benchmark (default: 1,000 agents x 1,000 chunks plus one
# agent with 100,000: about 4 min here, COPY 76 s and the big agent's own HNSW index 48 s).
# BENCH_SKIP_KNOWLEDGE=1 runs only the function benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
# The widget's bundle, gzipped (the budget is checked by its build: loader 4 KB, total 16 KB).
echo "== widget bundle (gzip -9)"
node -e 'const m=require("./functions/serve-widget/widget/dist/manifest.json");
  console.log(`loader ${m.gzipBytes.loader} B (budget ${m.budget.loader}), app ${m.gzipBytes.app} B, total ${m.gzipBytes.total} B (budget ${m.budget.total})`)'
cargo build --release --workspace --bins
# Extraction throughput and the sandboxed reader's peak memory (no services needed).
cargo run --release --quiet -p chatpad-shared --bin chatpad-extract-bench
# PDF text quality on aws-docs-qa pages printed to PDF by Chromium (installed by bootstrap).
.venv/bin/python infra/pdf_quality.py target/release/chatpad-extract
infra/with-services.sh bash -c 'cargo run --release --quiet -p chatpad-shared --bin chatpad-migrate && cargo run --release --quiet -p chatpad-shared --bin chatpad-dev-seed && .venv/bin/python infra/bench.py'
# Realtime through the dev WebSocket gateway (release functions): human message -> visitor
# latency p50/p95, and one event fanned out to 1,000 inbox connections of one account.
echo "== realtime"
REALTIME_CONNECT_RATE_PER_MINUTE=100000 WITH_FUNCTIONS_RELEASE=1 infra/with-services.sh \
  infra/with-functions.sh bash -c 'cargo run --release --quiet -p chatpad-shared --bin chatpad-migrate && cargo run --release --quiet -p chatpad-shared --bin chatpad-dev-seed && set -a && . .local/demo.env && set +a && .venv/bin/python infra/realtime_check.py bench'
# Webhook delivery: deliveries/s of one worker instance, event -> first attempt latency.
echo "== webhooks"
infra/with-services.sh cargo run --release --quiet -p webhook-worker --example webhook-bench

if [[ "${BENCH_SKIP_KNOWLEDGE:-0}" == 1 ]]; then exit 0; fi
features=(-p chatpad-shared --features local-embeddings,test-support)
cargo build --release "${features[@]}" --bins
export BENCH_VECTOR_ARGS="${BENCH_VECTOR_ARGS:-}"
infra/with-services.sh bash -c '
  set -e
  echo "== embedding (all-MiniLM-L6-v2, 256 chunks of 128 tokens)"
  cargo run --release --quiet -p chatpad-minilm --bin chatpad-embed-bench -- 256
  echo "== chunking"
  cargo run --release --quiet -p chatpad-shared --bin chatpad-chunk-bench
  echo "== retrieval quality (aws-docs-qa)"
  # The vectors are kept for the second run (and the next `make bench`): quality, not speed.
  retrieval=(cargo run --release --quiet -p chatpad-shared --features local-embeddings,test-support
    --bin chatpad-retrieval-bench -- --cache .local/retrieval-embeddings.bin)
  "${retrieval[@]}"
  echo "== retrieval quality on the large-agent paths (HNSW, bounded BM25 with word statistics)"
  "${retrieval[@]}" --exact-max 1000
  echo "== agent-filtered vector search at scale"
  cargo run --release --quiet -p chatpad-shared --features local-embeddings,test-support --bin chatpad-vector-bench -- $BENCH_VECTOR_ARGS
'

echo "== chat: widget-chat server overhead and first streamed byte; get-widget-config throughput"
infra/with-services.sh bash -c '
  set -e
  cargo run --release --quiet -p widget-chat --example chat-bench -- ${BENCH_CHAT_ARGS:-}
  # The largest agent both rankings still search exactly (`chatpad.exact_search_max_chunks`).
  cargo run --release --quiet -p widget-chat --example chat-bench -- ${BENCH_CHAT_ARGS:-} --chunks 20000
  cargo run --release --quiet -p get-widget-config --example config-bench
'
