#!/usr/bin/env bash
# Creates .venv (if missing) and installs the project with its development extras. Sourced by the other scripts.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
if [ ! -x "$ROOT/.venv/bin/python" ]; then
  "$PY" -m venv "$ROOT/.venv"
fi
if ! "$ROOT/.venv/bin/python" -m uv --version >/dev/null 2>&1; then
  "$ROOT/.venv/bin/python" -m pip install -q --disable-pip-version-check uv
fi
"$ROOT/.venv/bin/python" -m uv pip install -q --python "$ROOT/.venv/bin/python" -e "$ROOT[${DOMINUS_EXTRAS:-dev}]"
