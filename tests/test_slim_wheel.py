"""scripts/slim_wheel.py: what bootstrap.sh drops from the llama-cpp-python wheel it builds.

The script runs as bootstrap runs it (a subprocess on a wheel file), on a wheel laid out as
llama-cpp-python 0.3.36's is: the package with its libraries under three names each, and
llama.cpp's own install of libraries, headers and CMake files at the root.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "slim_wheel.py"
DIST = "llama_cpp_python-0.3.36.dist-info"
KEPT = ["llama_cpp/__init__.py", "llama_cpp/lib/libllama.so", "llama_cpp/lib/libllama.so.0",
        "llama_cpp/lib/libggml.so", "llama_cpp/lib/libggml.so.0", f"{DIST}/METADATA",
        f"{DIST}/WHEEL"]
DROPPED = ["llama_cpp/lib/libllama.so.0.5.0", "llama_cpp/lib/libggml.so.0.25.3",
           "lib/libllama.so", "lib/libllama.so.0", "lib/cmake/llama/llama-config.cmake",
           "lib/pkgconfig/llama.pc", "include/llama.h"]


def _wheel(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as wheel:
        for name in KEPT + DROPPED:
            wheel.writestr(name, f"contents of {name}")
        record = "".join(f"{name},sha256=x,1\n" for name in KEPT + DROPPED)
        wheel.writestr(f"{DIST}/RECORD", record + f"{DIST}/RECORD,,\n")
    return path


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def test_drops_the_copies_nothing_loads_and_their_record_lines(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl")
    done = _run(str(wheel))
    assert done.returncode == 0, done.stderr
    assert f"dropped {len(DROPPED)} files" in done.stdout
    with zipfile.ZipFile(wheel) as slim:
        names = set(slim.namelist())
        record = slim.read(f"{DIST}/RECORD").decode()
        soname = "llama_cpp/lib/libllama.so.0"
        assert slim.read(soname) == f"contents of {soname}".encode()
    assert names == {*KEPT, f"{DIST}/RECORD"}
    listed = {line.split(",", 1)[0] for line in record.splitlines()}
    assert listed == {*KEPT, f"{DIST}/RECORD"}


def test_a_slim_wheel_is_left_as_it_is(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "llama.whl")
    assert _run(str(wheel)).returncode == 0
    before = wheel.read_bytes()
    again = _run(str(wheel))
    assert again.returncode == 0 and again.stdout == ""
    assert wheel.read_bytes() == before


def test_a_missing_wheel_is_named(tmp_path: Path) -> None:
    done = _run(str(tmp_path / "absent.whl"))
    assert done.returncode == 2
    assert "absent.whl: no such wheel" in done.stderr
