"""Every YAML snippet of README.md and docs/*.md is a configuration file that validates, or
says on its first line that it is a fragment and what it merges into; the merge validates.

Readers copy snippets into files, so a snippet that is not a valid file on its own must
say so: ``# Fragment: merge into a full configuration such as examples/switchman.yaml``
(its top-level keys replace the base file's). A standalone snippet must also pass the real
``switchman config check``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from switchman.config import load_config

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```ya?ml[ \t]*\n(.*?)^```", re.S | re.M)
FRAGMENT = re.compile(r"# Fragment: merge into a full configuration such as (\S+?)[.,;:]?(\s|$)")
#: ``${VAR}`` without a default: a snippet leaves it to the reader's environment.
REQUIRED_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def placeholders(text: str) -> dict[str, str]:
    """A value for every variable the snippet requires (a key, say), as a reader sets it."""
    return {var: f"snippet-{var.lower()}" for var in REQUIRED_VAR.findall(text)}


def snippets() -> list:
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append(pytest.param(match.group(1), id=f"{doc.name}:{line}"))
    return found


def test_the_docs_have_snippets() -> None:
    ids = [p.id for p in snippets()]
    assert any(i.startswith("README.md:") for i in ids)
    assert any(i.startswith("gateway.md:") for i in ids)


@pytest.mark.parametrize("snippet", snippets())
def test_snippet_is_a_valid_configuration(snippet: str, tmp_path: Path) -> None:
    first = snippet.splitlines()[0] if snippet.strip() else ""
    data = yaml.safe_load(snippet)
    assert isinstance(data, dict), "a configuration snippet is a mapping"
    fragment = FRAGMENT.match(first)
    path = tmp_path / "switchman.yaml"
    if fragment:
        base = ROOT / fragment.group(1)
        assert base.is_file(), f"the fragment's base {fragment.group(1)} does not exist"
        path.write_text(yaml.safe_dump({**yaml.safe_load(base.read_text()), **data}))
        load_config(path, placeholders(snippet))  # raises ConfigError listing every problem
        return
    assert not first.lower().startswith("# fragment"), \
        "a fragment says: # Fragment: merge into a full configuration such as <file>"
    path.write_text(snippet)
    load_config(path, placeholders(snippet))
    env = {**{k: v for k, v in os.environ.items() if k != "SWITCHMAN_CONFIG"},
           **placeholders(snippet)}
    check = subprocess.run([sys.executable, "-m", "switchman.gateway", "config", "check",
                            str(path)], env=env, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr
