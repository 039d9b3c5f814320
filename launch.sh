#!/usr/bin/env bash
# ./launch.sh [studio flags]      install into .venv if needed, then start the studio
# ./launch.sh test [pytest args]  install the test extras too, then run the whole suite
# ./launch.sh install [app|test]  only install (CI and tools use it); exits 0 when done
#
# .venv/.installed records what is installed, one line per kind: "<hash of its requirement
# files>-app" (requirements.txt) and "<hash>-test" (requirements.txt + requirements-test.txt).
# A test install covers the app too; a line that no longer matches the files means "install".
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"

PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  for cand in python3.11 python3 python; do
    if command -v "$cand" >/dev/null 2>&1; then PY="$cand"; break; fi
  done
fi
VENV="$HERE/.venv"
STAMP="$VENV/.installed"

stamp_line() {  # app | test -> the line that says "this kind is installed for these files"
  local files=("$HERE/requirements.txt")
  if [[ $1 == test ]]; then files+=("$HERE/requirements-test.txt"); fi
  echo "$(cat "${files[@]}" | sha256sum | cut -c1-16)-$1"
}

installed() {  # app | test; a test install covers the app
  [[ -f "$STAMP" ]] || return 1
  grep -qxF -- "$(stamp_line "$1")" "$STAMP" || { [[ $1 == app ]] && grep -qxF -- "$(stamp_line test)" "$STAMP"; }
}

install() {
  local want="$1"
  if [[ $want != app && $want != test ]]; then
    echo "launch.sh: install takes app or test, got '$want'" >&2
    exit 2
  fi
  if [[ ! -x "$VENV/bin/python" ]]; then
    echo "launch.sh: creating $VENV with $($PY --version)"
    "$PY" -m venv "$VENV"
  fi
  if installed "$want"; then return 0; fi
  echo "launch.sh: installing ($want) into $VENV ..."
  local reqs=(-r "$HERE/requirements.txt")
  if [[ $want == test ]]; then reqs+=(-r "$HERE/requirements-test.txt"); fi
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${reqs[@]}"
  if [[ $want == test ]] && ! command -v chromium >/dev/null 2>&1; then
    echo "launch.sh: installing Debian's chromium for the browser tests"
    if command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null \
        || echo "launch.sh: could not install chromium; browser tests will be skipped"
    else
      echo "launch.sh: no chromium and no root apt-get; browser tests will be skipped"
    fi
  fi
  # Record what is installed now (a test install covers the app). Written beside, then renamed,
  # so a venv copied with hard links (cp -al) never writes into the original's stamp.
  { stamp_line app; if [[ $want == test ]]; then stamp_line test; fi; } > "$STAMP.new"
  mv -f "$STAMP.new" "$STAMP"
}

export GRADIO_ANALYTICS_ENABLED=False
case "${1:-}" in
  install)
    install "${2:-app}" ;;
  test)
    shift; install test
    cd "$HERE"
    export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
    exec "$VENV/bin/python" -m pytest "$@" ;;
  *)
    install app
    exec "$VENV/bin/python" "$HERE/app.py" "$@" ;;
esac
