#!/usr/bin/env bash
# widget.sh build|test  (used by `make widget`, `make test`, `make bench`)
#   build  installs the widget's npm packages from package-lock.json (npm ci, only when the
#          lock file changed) and bundles it (build.mjs): dist/ for serve-widget's build.rs;
#          fails over the size budget.
#   test   the browser tests: Debian's Chromium driven by playwright-core against a loopback
#          host page embedding the real script tag, with the functions served (run under
#          infra/with-functions.sh). Screenshots go to .local/artifacts/widget/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WIDGET="$ROOT/functions/serve-widget/widget"
cd "$WIDGET"

install() {
  local want stamp=node_modules/.package-lock.sha256
  want="$(sha256sum package-lock.json | cut -d' ' -f1)"
  if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    echo "widget: npm ci" >&2
    npm ci --no-audit --no-fund --loglevel=error >&2
    echo "$want" > "$stamp"
  fi
}

case "${1:-build}" in
  build)
    install
    node build.mjs
    ;;
  test)
    install
    node test/browser.mjs
    ;;
  *) echo "usage: $0 build|test" >&2; exit 2 ;;
esac
