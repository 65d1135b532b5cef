#!/usr/bin/env bash
# The suite behind `make test`, run with the services and functions up (see the Makefile):
# schema migrations on the local database, the demo data, schemathesis against the served
# OpenAPI document, the widget in Chromium against the served functions, then every Rust test.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

cargo run --quiet -p chatpad-shared --bin chatpad-migrate
cargo run --quiet -p chatpad-shared --bin chatpad-dev-seed
set -a; . "$ROOT/.local/demo.env"; set +a

# Human takeover and realtime end to end, over real WebSockets through the dev gateway: a
# visitor chatting, a team member taking over, messages and typing both ways, a dropped
# connection catching up, the bot resuming, another account's member refused.
"$ROOT/.venv/bin/python" infra/realtime_check.py e2e

# Property-based tests of the management API from its own OpenAPI document: a fixed seed and a
# bounded number of examples; no 5xx, and every response must match the documented schema.
# (Positive mode: cargo lambda's local emulator itself answers 500 to request bodies that are
# not valid UTF-8, before our function runs; invalid JSON is covered by the Rust tests.)
# Run from .local so Hypothesis' files do not trigger cargo lambda watch's reloads. As an
# account of its own, emptied by the seed on every run (what it creates stays out of the demo).
# The document is read from the committed copy (the Rust tests check that the served one is
# identical): the emulator occasionally never answers a 266 KB response (1 in ~400 under load).
base="http://localhost:${CARGO_LAMBDA_PORT:-9000}/lambda-url/management-api"
# On a failure, what the emulator saw too (CI keeps only the output's tail).
if ! (cd "$ROOT/.local" && "$ROOT/.venv/bin/schemathesis" run "$ROOT/functions/management-api/openapi.json" --url "$base" \
  -H "Authorization: Bearer $PROPERTY_TEST_JWT" --max-examples 10 --seed 42 --workers 1 --mode positive \
  --generation-database none --request-timeout 30 \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance); then
  echo "test-suite: function instances started by cargo lambda watch, and its warnings (.local/watch.log):" >&2
  grep -v '"level":"INFO"' "$ROOT/.local/watch.log" \
    | grep -i -e error -e warn -e panic -e 'starting lambda function' | cut -c1-200 | tail -n 25 >&2 || true
  exit 1
fi

# The widget in a real browser (Debian's Chromium + playwright-core) on a loopback host page
# embedding the real script tag. A failure is reported after the Rust tests have run too.
widget=0
infra/widget.sh test || widget=$?

cargo nextest run --workspace --all-features --no-fail-fast
exit "$widget"
