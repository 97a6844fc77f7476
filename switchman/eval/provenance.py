"""What an evaluation was run on, so a report can be reproduced or told apart from another.

A report's figures depend on the data files, the seed, the encoder and the switchman that
made them; two reports that differ in one of those should say so on their face. Files are
recorded by path, size and SHA-256, which tells an edited table from the original even when
its name is unchanged.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def file_record(path: Path) -> dict:
    """{path (absolute), bytes, sha256} of one file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return {"path": str(path.resolve()), "bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def directory_record(path: Path) -> dict:
    """{path, files: {name: file_record}} of a directory's files (a saved router)."""
    return {
        "path": str(path.resolve()),
        "files": {p.name: file_record(p) for p in sorted(path.iterdir()) if p.is_file()},
    }
