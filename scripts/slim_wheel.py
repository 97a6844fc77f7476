"""Drop from a llama-cpp-python wheel the files an install never loads (in place, idempotent).

    python scripts/slim_wheel.py WHEEL

Why: the wheel built from the sdist holds its shared libraries three times over and twice
more besides. llama.cpp's own CMake install rules put a second copy of every library, plus
its headers and CMake/pkg-config files, at the wheel's root (so in ``site-packages/lib``
and ``site-packages/include``), where nothing looks: llama_cpp loads from
``llama_cpp/lib``. And a wheel cannot hold symlinks, so each library's names
``libX.so``, ``libX.so.0`` and ``libX.so.0.25.3`` are three full copies; ctypes opens
``libX.so`` and the dynamic loader the SONAME ``libX.so.0``, and nothing opens the fully
versioned name. Dropped, 50 MB of libraries become 12.

The wheel's RECORD loses the dropped files' lines, so pip installs and uninstalls it as it
would any wheel.
"""

from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path

#: Fully versioned names of a shared library (libggml.so.0.25.3): the SONAME and the
#: unversioned name are what gets loaded.
_FULL_VERSION = re.compile(r"\.so\.\d+\.\d+\.\d+$")
#: What llama.cpp's install rules put at the wheel's root: libraries, headers, CMake files.
_ROOT_COPIES = {"lib", "include"}


def unused(name: str) -> bool:
    """Whether an installed llama-cpp-python never opens wheel entry ``name``."""
    top = name.split("/", 1)[0]
    if top in _ROOT_COPIES:
        return True
    return name.startswith("llama_cpp/lib/") and bool(_FULL_VERSION.search(name))


def slim(wheel: Path) -> int:
    """Rewrite ``wheel`` without its unused entries; the number of entries dropped."""
    with zipfile.ZipFile(wheel) as source:
        entries = source.infolist()
        dropped = {e.filename for e in entries if unused(e.filename)}
        if not dropped:
            return 0
        partial = wheel.with_name(wheel.name + ".partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as target:
            for entry in entries:
                if entry.filename in dropped:
                    continue
                data = source.read(entry)
                if entry.filename.endswith(".dist-info/RECORD"):
                    lines = data.decode().splitlines(keepends=True)
                    data = "".join(line for line in lines
                                   if line.split(",", 1)[0] not in dropped).encode()
                target.writestr(entry, data)
    partial.replace(wheel)
    return len(dropped)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python scripts/slim_wheel.py WHEEL", file=sys.stderr)
        return 2
    wheel = Path(argv[0])
    if not wheel.is_file():
        print(f"slim_wheel: {wheel}: no such wheel", file=sys.stderr)
        return 2
    dropped = slim(wheel)
    if dropped:
        print(f"slim_wheel: {wheel.name}: dropped {dropped} files an install never opens")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
