#!/usr/bin/env bash
# Creates the project-local virtualenv (.venv at the repo root) and installs
# infra/requirements.txt into it, only when that file changed since the last
# successful install (sha256 stamp kept inside .venv). Fast no-op otherwise.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
REQ="$ROOT/infra/requirements.txt"
STAMP="$VENV/.requirements.sha256"
PYTHON="${PYTHON:-python3}"

# Chromium for the widget's browser tests (playwright-core drives Debian's build; its own
# browser download is not used). Installed once, as root with apt; elsewhere a hint.
if [[ ! -x /usr/bin/chromium ]]; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing chromium (apt) for the widget's browser tests"
    (exec 8>/tmp/chatpad-apt.lock; flock 8
     [[ -x /usr/bin/chromium ]] || apt-get install -y -q chromium >/dev/null 2>&1 \
       || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; })
  else
    echo "bootstrap: /usr/bin/chromium is missing: install Debian's chromium package for the widget's browser tests" >&2
  fi
fi

want="$(sha256sum "$REQ" | cut -d' ' -f1)"
up_to_date() {
  [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]] \
    && "$VENV/bin/python" -c '' 2>/dev/null
}
up_to_date && exit 0

# Serialize concurrent bootstraps (`make dev` and `make test` started together):
# lock the requirements file itself, so no lock file has to live anywhere.
exec 9<"$REQ"
if command -v flock >/dev/null; then flock 9; fi
up_to_date && exit 0   # another bootstrap finished while we waited

if ! { [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c '' 2>/dev/null; }; then
  echo "bootstrap: creating virtualenv $VENV"
  # --clear: a venv whose base interpreter vanished (pyenv upgrade) is rebuilt whole.
  if ! "$PYTHON" -m venv --clear "$VENV"; then
    # ensurepip fails on some interpreters (and on a full disk): make the venv without pip
    # and let the base interpreter's pip install into it.
    df -h "$ROOT" | tail -1 | awk '{print "bootstrap: ensurepip failed; disk free: " $4}'
    "$PYTHON" -m venv --clear --without-pip "$VENV"
    "$PYTHON" -m pip --disable-pip-version-check --python "$VENV/bin/python" install -q pip
  fi
fi

rm -f "$STAMP"
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
# Lines marked "# no-deps" go in a second, --no-deps pass (pip has no per-line option).
grep -v -- '# no-deps' "$REQ" > "$tmp" || true
mapfile -t nodeps < <(grep -- '# no-deps' "$REQ" | sed 's/#.*//; s/[[:space:]]//g' | grep -v '^$' || true)

pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
echo "bootstrap: installing infra/requirements.txt into .venv (first time: a few minutes)"
"${pip[@]}" install -q -r "$tmp"
if ((${#nodeps[@]})); then
  echo "bootstrap: installing without dependencies: ${nodeps[*]}"
  "${pip[@]}" install -q --no-deps "${nodeps[@]}"
fi

echo "$want" > "$STAMP"
echo "bootstrap: .venv is up to date"
