#!/usr/bin/env bash
# ./launch.sh [studio flags]   install into .venv if needed, then start the studio
# ./launch.sh test [pytest args] install test extras, then run the whole suite
# ./launch.sh install           only install (CI and tools use it)
set -euo pipefail
cd "$(dirname "$0")"

PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  for cand in python3.11 python3 python; do
    if command -v "$cand" >/dev/null 2>&1; then PY="$cand"; break; fi
  done
fi
VENV=.venv
STAMP="$VENV/.installed"

install() {
  local want="$1"   # app | test
  if [[ ! -x "$VENV/bin/python" ]]; then
    echo "launch.sh: creating $VENV with $($PY --version)"
    "$PY" -m venv "$VENV"
  fi
  local sum
  sum="$(cat requirements.txt $( [[ $want == test ]] && echo requirements-test.txt ) | sha256sum | cut -c1-16)-$want"
  if [[ -f "$STAMP" ]] && grep -qx -- "$sum" "$STAMP"; then return 0; fi
  echo "launch.sh: installing ($want) into $VENV ..."
  local reqs=(-r requirements.txt)
  [[ $want == test ]] && reqs+=(-r requirements-test.txt)
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
  # record what is installed; a test install also covers the app
  { echo "$sum"; [[ $want == test ]] && echo "${sum%-test}-app"; } > "$STAMP"
}

export GRADIO_ANALYTICS_ENABLED=False
case "${1:-}" in
  install)
    shift; install "${1:-app}" ;;
  test)
    shift; install test
    export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
    exec "$VENV/bin/python" -m pytest "$@" ;;
  *)
    install app
    exec "$VENV/bin/python" app.py "$@" ;;
esac
