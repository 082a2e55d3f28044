#!/usr/bin/env bash
# The GPU check of diffhpe (see tools/gpu_check.py): device and versions, the tests on the GPU, the speed benchmark at
# the paper's configuration, paper-size models trained for minutes and scored, a table last. About 8 minutes on one GPU.
#   bash tools/gpu_check.sh                 # results in $OUT, or ./gpu-check
#   bash tools/gpu_check.sh --dry-run       # on a CPU with tiny budgets: checks the script (the tests run this)
# Offline machines: GPU_CHECK_WHEELS=DIR installs the wheels in DIR first (e.g. nbdev, execnb, fastcore, safetensors).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi; fi
if [ -n "${GPU_CHECK_WHEELS:-}" ]; then
  "$PY" -m pip install -q --no-index --no-deps --target /tmp/gpu-check-site "$GPU_CHECK_WHEELS"/*.whl
  export PYTHONPATH="/tmp/gpu-check-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" tools/gpu_check.py "$@"
