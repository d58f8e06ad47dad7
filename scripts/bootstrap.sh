#!/usr/bin/env bash
# Create .venv and install the pinned requirements plus the provider (editable). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
if ! command -v uv >/dev/null; then "$PY" -m pip install -q uv; fi
[ -x .venv/bin/python ] || uv venv -q -p "$PY" .venv
uv pip sync -q -p .venv/bin/python requirements.txt
uv pip install -q -p .venv/bin/python --no-deps -e .
