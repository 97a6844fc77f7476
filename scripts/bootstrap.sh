#!/usr/bin/env bash
# Install switchman and everything it needs into ./.venv, from nothing.
# torch goes first and pinned: 2.13.0 is the CPU wheel this machine has; anything else would
# pull a multi-GB CUDA build. llama-cpp-python compiles once (~8 min); pip caches the wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q torch==2.13.0
CMAKE_ARGS="-DLLAVA_BUILD=OFF" .venv/bin/pip install -q -e '.[all,dev]'
