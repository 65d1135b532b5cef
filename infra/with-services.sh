#!/usr/bin/env bash
# with-services.sh CMD...  (used by `make test`, `make migrate`, ...)
# Runs CMD with the local services up and .local/env exported. Services that were
# already running are reused and left running; services started here are stopped
# afterwards. Exits with CMD's exit code.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
STACK="$ROOT/infra/stack.py"
if (($# == 0)); then echo "usage: $0 CMD [ARGS...]" >&2; exit 2; fi

"$ROOT/infra/bootstrap.sh" >&2 || exit $?

started=0
"$PY" "$STACK" status >/dev/null 2>&1 || started=1
stop_services() {
  if ((started)); then "$PY" "$STACK" stop >&2 || true; fi
}
trap stop_services EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Always run start: it is idempotent and refreshes resources and the env file. Its
# output goes to stderr so CMD's stdout stays clean.
"$PY" "$STACK" start >&2 || exit $?
set -a; . "$ROOT/.local/env"; set +a

"$@"
exit $?
