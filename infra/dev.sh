#!/usr/bin/env bash
# `make dev` (after bootstrap and build): services, migrations + demo data, every
# function under `cargo lambda watch`, and the SQS pump. Ctrl-C stops all of it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
PORT="${CARGO_LAMBDA_PORT:-9000}"
export CARGO_LAMBDA_PORT="$PORT"   # the pump posts to this port
WS_PORT="${CHATPAD_WS_PORT:-9001}"
export CHATPAD_WS_PORT="$WS_PORT"  # the dev WebSocket gateway (stack.py writes its URLs)
# The PyPI cargo-lambda ships the binary as .venv/bin/cargo-lambda: on PATH, cargo runs it
# as `cargo lambda`.
export PATH="$ROOT/.venv/bin:$PATH"

watch_pid="" pump_pid="" gateway_pid=""
cleanup() {
  trap - EXIT INT TERM
  echo "dev: stopping"
  # watch runs in its own session (setsid): signal its group, which holds cargo and the functions.
  [[ -n "$watch_pid" ]] && kill -TERM -- "-$watch_pid" 2>/dev/null || true
  [[ -n "$pump_pid" ]] && kill -TERM "$pump_pid" 2>/dev/null || true
  [[ -n "$gateway_pid" ]] && kill -TERM "$gateway_pid" 2>/dev/null || true
  for _ in $(seq 1 50); do   # up to 10 s, then force
    kill -0 -- "-${watch_pid:-0}" 2>/dev/null || kill -0 "${pump_pid:-0}" 2>/dev/null || break
    sleep 0.2
  done
  [[ -n "$watch_pid" ]] && kill -KILL -- "-$watch_pid" 2>/dev/null || true
  [[ -n "$pump_pid" ]] && kill -KILL "$pump_pid" 2>/dev/null || true
  "$PY" infra/stack.py stop || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM   # exit runs the EXIT trap

"$PY" infra/stack.py start
make -C "$ROOT" --no-print-directory migrate seed

set -a; . "$ROOT/.local/env"; set +a

if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  echo "dev: port $PORT is already in use (another cargo lambda watch?); set CARGO_LAMBDA_PORT" >&2
  exit 1
fi
# setsid: own process group, so Ctrl-C reaches us first and we stop it in order.
setsid cargo lambda watch --invoke-port "$PORT" &
watch_pid=$!
for _ in $(seq 1 600); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  kill -0 "$watch_pid" 2>/dev/null || { echo "dev: cargo lambda watch exited" >&2; exit 1; }
  sleep 0.2
done

"$PY" infra/stack.py pump &
pump_pid=$!
# API Gateway's WebSocket API, locally (cargo lambda does not emulate it).
"$PY" infra/ws_gateway.py --port "$WS_PORT" --lambda-port "$PORT" &
gateway_pid=$!

demo_key=""
demo_agent=""
if [[ -f .local/demo.env ]]; then
  demo_key="$(set -a; . .local/demo.env; printf %s "${DEMO_API_KEY:-}")"
  demo_agent="$(set -a; . .local/demo.env; printf %s "${DEMO_AGENT_ID:-}")"
fi

echo
echo "ChatPad is running (functions compile on their first request):"
for manifest in functions/*/Cargo.toml; do
  [[ -f "$manifest" ]] || continue
  case "$manifest" in *-worker/*|*/scheduler/*) continue ;; esac   # not HTTP: run by the pump
  # The function name is the package name, which cargo lambda watch routes on.
  fn="$(sed -n 's/^name[[:space:]]*=[[:space:]]*"\(.*\)"/\1/p' "$manifest" | head -n1)"
  echo "  http://localhost:$PORT/lambda-url/${fn:-$(basename "$(dirname "$manifest")")}/"
done
echo "  ws://localhost:$WS_PORT/?token=<visitor token from realtime /token, or a JWT>   (WebSocket gateway)"
echo
echo "Try:"
echo "  curl -s -X POST http://localhost:$PORT/lambda-url/validate-api-key/ -H 'content-type: application/json' -d '{\"apiKey\":\"${demo_key:-<DEMO_API_KEY from .local/demo.env>}\"}'"
echo "  . .local/demo.env; curl -s -X POST http://localhost:$PORT/lambda-url/management-api/v1/agents/\$DEMO_AGENT_ID/knowledge \\"
echo "    -H \"authorization: Bearer \$DEMO_JWT\" -H 'content-type: application/json' \\"
echo "    -d '{\"type\":\"text\",\"title\":\"Returns\",\"text\":\"Items can be returned within 30 days.\"}'   # then GET .../knowledge: ready"
echo "  The demo agent's hosted chat page: http://localhost:$PORT/lambda-url/serve-widget/chat/${demo_agent:-<DEMO_AGENT_ID>}"
echo "  Embed it in a page: <script src=\"http://localhost:$PORT/lambda-url/serve-widget\" data-agent-id=\"${demo_agent:-<DEMO_AGENT_ID>}\" async></script>"
echo
echo "Env: .local/env   Logs: .local/pg/postgres.log .local/moto.log   Ctrl-C stops everything."

# Return when Ctrl-C arrives or when watch or the pump dies (then clean up the rest).
wait -n "$watch_pid" "$pump_pid" "$gateway_pid" || true
