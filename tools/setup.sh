#!/usr/bin/env bash
# Sets up a development environment in .venv: CPU torch (a CUDA user installs their torch first), diffhpe + dev tools.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[dev]"
# the video front end (diffhpe.video: mediapipe 0.10.14 with its bundled BlazePose models, OpenCV, FFmpeg in a wheel);
# its wheels exist for Python 3.9-3.12: elsewhere the video chapter's tests skip
.venv/bin/python -m pip install -q -e ".[video]" || echo "the video extra (diffhpe[video]) could not be installed: the video tests will skip"
