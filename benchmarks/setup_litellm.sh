#!/usr/bin/env bash
# Install LiteLLM's proxy into its own venv (.bench-venv, gitignored) for
# benchmarks/gateway_overhead.py. It must not go into .venv: its pins would
# change switchman's dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .bench-venv/bin/litellm ]; then
    python3 -m venv .bench-venv
    .bench-venv/bin/pip install --quiet --upgrade pip
    .bench-venv/bin/pip install --quiet 'litellm[proxy]'
fi
.bench-venv/bin/litellm --version
