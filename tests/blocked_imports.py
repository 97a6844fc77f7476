"""Code that makes some packages unimportable in a `python -c` subprocess.

The default install has no torch; this machine's dev venv may. To test the default path
for real here, a subprocess runs with a meta-path finder in front of every other that
refuses these names, as if they were not installed (ModuleNotFoundError, which optional
imports in third-party code handle as absence).
"""

from __future__ import annotations

#: What only the torch export needs; the default encoders must work without any of it.
TORCH_STACK = ("torch", "transformers", "sentence_transformers", "onnxscript")


def block_imports(names: tuple[str, ...] = TORCH_STACK) -> str:
    """A prefix for `python -c` code: after it, importing any of `names` fails."""
    return (
        "import sys, importlib.abc\n"
        "class _Blocked(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.partition('.')[0] in {tuple(names)!r}:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r} (blocked)', name=name)\n"
        "sys.meta_path.insert(0, _Blocked())\n"
    )
