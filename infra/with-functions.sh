#!/usr/bin/env bash
# with-functions.sh CMD...  (used by `make test`)
# Runs CMD with every function served by `cargo lambda watch` at
# http://localhost:$CARGO_LAMBDA_PORT/lambda-url/<function>/ (default port 9000), as in
# `make dev`, and the dev WebSocket gateway (infra/ws_gateway.py) on
# ws://localhost:$CHATPAD_WS_PORT (default 9001). Expects the services' environment to be exported (run it under
# with-services.sh). Stops the functions afterwards; exits with CMD's exit code.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${CARGO_LAMBDA_PORT:-9000}"
WS_PORT="${CHATPAD_WS_PORT:-9001}"
export CARGO_LAMBDA_PORT="$PORT" CHATPAD_WS_PORT="$WS_PORT" PATH="$ROOT/.venv/bin:$PATH"
if (($# == 0)); then echo "usage: $0 CMD [ARGS...]" >&2; exit 2; fi
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  echo "with-functions: port $PORT is in use (another cargo lambda watch?); set CARGO_LAMBDA_PORT" >&2
  exit 1
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$WS_PORT") 2>/dev/null; then
  echo "with-functions: port $WS_PORT is in use (another WebSocket gateway?); set CHATPAD_WS_PORT" >&2
  exit 1
fi

cd "$ROOT"
# Its own session, so stopping it stops the functions it spawned too.
# --ignore-changes: no hot reloads mid-suite (a reload answers in-flight requests with 500).
# WITH_FUNCTIONS_RELEASE=1 serves release builds (`make bench`).
setsid cargo lambda watch --ignore-changes ${WITH_FUNCTIONS_RELEASE:+--release} --invoke-port "$PORT" \
  >"$ROOT/.local/watch.log" 2>&1 &
watch_pid=$!
# The SQS -> worker pump and the scheduler's ticks, as Lambda would run them: tests see
# knowledge sources processed by the real ingest-worker.
"$ROOT/.venv/bin/python" "$ROOT/infra/stack.py" pump --port "$PORT" >"$ROOT/.local/pump.log" 2>&1 &
pump_pid=$!
# API Gateway's WebSocket API, locally: browsers' connections become events for `realtime`.
"$ROOT/.venv/bin/python" "$ROOT/infra/ws_gateway.py" --port "$WS_PORT" --lambda-port "$PORT" \
  >"$ROOT/.local/ws-gateway.log" 2>&1 &
gateway_pid=$!
stop() {
  kill -TERM "$gateway_pid" 2>/dev/null; wait "$gateway_pid" 2>/dev/null
  kill -TERM "$pump_pid" 2>/dev/null; wait "$pump_pid" 2>/dev/null
  kill -TERM -- "-$watch_pid" 2>/dev/null; wait "$watch_pid" 2>/dev/null
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for _ in $(seq 1 300); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  kill -0 "$watch_pid" 2>/dev/null || { echo "with-functions: cargo lambda watch exited (see .local/watch.log)" >&2; exit 1; }
  sleep 0.2
done
# Start each HTTP function once before the suite: its first request spawns `cargo run`, and
# the emulator can answer that very first request with a 500 while cargo waits on a lock.
for manifest in "$ROOT"/functions/*/Cargo.toml; do
  fn="$(basename "$(dirname "$manifest")")"
  [[ "$fn" == *-worker || "$fn" == scheduler ]] && continue   # no HTTP events
  for _ in $(seq 1 60); do
    code="$(curl -s -o /dev/null -w '%{http_code}' -m 120 "http://localhost:$PORT/lambda-url/$fn/")"
    [[ "$code" != 000 && "$code" != 5?? ]] || [[ "$code" == 501 ]] && break
    sleep 1
  done
done
echo "with-functions: functions served at http://localhost:$PORT/lambda-url/<function>/ (log .local/watch.log)," \
  "WebSocket gateway at ws://localhost:$WS_PORT (log .local/ws-gateway.log)" >&2
"$@"
exit $?
