"""What ``serve`` verifies before it starts anything; ``config check`` runs the same code.

Validating the file (:mod:`switchman.config`) is not all a gateway needs: a router
directory must load and know the names ``model_map`` maps, a GGUF file must exist and be
one, llama.cpp must be installed, the decision log must be writable, a pinned port must be
free. :func:`examine` runs all of
it for both commands, so ``config check`` refuses exactly what ``serve`` refuses and says
so in the same lines. Checks that need the machine also run on the entries of an invalid
file that are valid on their own, so their problems come with the file's, in one pass.

Whether a port is free belongs to the moment, not to the file: ``serve`` refuses a taken
one, ``config check`` warns (the gateway the file is about is usually the one holding it,
running while its next configuration is checked).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from switchman.config import Config, ConfigError, Partial, load_config
from switchman.config.problems import in_section_order
from switchman.gateway.defaults import default_config
from switchman.gateway.execute.local import listen_problem, local_problems
from switchman.gateway.route.scoring import (
    MappedScorer,
    PriorScorer,
    Scorer,
    knowledge,
    load_scorer,
    load_trained,
    router_members,
)

#: The source name of the configuration used when no file is given.
DEFAULT_SOURCE = "default configuration"

#: The host local llama.cpp servers listen on (LocalModelServer's default).
LOCAL_HOST = "127.0.0.1"


@dataclass
class Findings:
    """``problems`` stop ``serve``; ``busy`` (ports) stop it now; ``warnings`` do not;
    ``knowledge`` says, per router and pool model, where the router's estimate comes from."""

    problems: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    knowledge: list[str] = field(default_factory=list)
    #: Trained routers loaded (and warmed up) by the checks, for ``serve`` to reuse.
    scorers: dict[str, Scorer] = field(default_factory=dict)


@dataclass
class Examined:
    """A configuration source, the configuration if it validated, and what was found."""

    source: str
    config: Config | None
    findings: Findings


def _router(findings: Findings, where: str, load: Callable[[], Scorer]) -> Scorer | None:
    """Load and warm up one trained router; its problems go to ``findings``."""
    try:
        scorer = load()
    except ConfigError as exc:
        findings.problems += exc.problems
        return None
    try:
        scorer.estimate(["warm-up"])  # what serve does before its first request
    except Exception as exc:  # any failure to score is a router serve cannot use
        findings.problems.append(f"{where}.path: the router cannot score a prompt: "
                                 f"{type(exc).__name__}: {exc}")
        return None
    return scorer


def _routers(config: Config, findings: Findings) -> None:
    for i, rc in enumerate(config.routers):
        where = f"routers[{i}]"
        members = router_members(rc, config)
        if rc.path is None:
            unset = [m.name for m in members if m.quality_prior is None]
            if unset:
                findings.warnings.append(f"{where} {rc.name}: no quality_prior for {unset}; "
                                         "they are scored with a neutral 0.5")
            findings.knowledge += [f"{where} {rc.name}: {line}" for line in knowledge(
                PriorScorer(members, config.default_cost_weight), members)]
            continue
        scorer = _router(findings, where, lambda rc=rc: load_scorer(rc, config))
        if scorer is None:
            continue
        findings.scorers[rc.name] = scorer
        findings.knowledge += [f"{where} {rc.name}: {line}"
                               for line in knowledge(scorer, members)]
        if isinstance(scorer, MappedScorer) and scorer.unknown_to_pool:
            findings.warnings.append(f"{where} {rc.name}: router models not in the pool are "
                                     f"ignored: {list(scorer.unknown_to_pool)}")
        missing = [m.name for m in members if m.name not in scorer.models]
        if missing:
            findings.warnings.append(f"{where} {rc.name}: pool models unknown to this router "
                                     f"are never chosen by it: {missing}")


def _local(config: Config, findings: Findings) -> None:
    windows = {m.name: (i, m.context_window) for i, m in enumerate(config.models)}
    for i, local in enumerate(config.local):
        findings.problems += local_problems(local, f"local[{i}]")
        j, window = windows.get(local.name, (None, None))
        if window is not None and local.n_ctx < window:
            findings.warnings.append(
                f"local[{i}].n_ctx: {local.n_ctx} is less than models[{j}].context_window "
                f"({window}); requests that fit the window can fail in llama.cpp")


#: The first bytes of every SQLite 3 database file.
SQLITE_MAGIC = b"SQLite format 3\x00"


def log_problem(path: Path) -> str | None:
    """Why the decision log at ``path`` could not be opened for writing, or None.

    Nothing is created: the gateway makes missing directories itself, so only what would
    stop it is reported (a directory in the way, no permission, a file that is not SQLite).
    """
    if path.is_dir():
        return f"{path} is a directory; name a file"
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK):
            return f"cannot write {path}: permission denied"
        with path.open("rb") as f:
            head = f.read(len(SQLITE_MAGIC))
        if head and head != SQLITE_MAGIC:
            return f"{path} exists and is not an SQLite database"
        return None
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"cannot create {path}: {ancestor} is not a directory"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"cannot create {path}: {ancestor} is not writable"
    return None


def _log(config: Config, findings: Findings) -> None:
    problem = log_problem(config.log.resolved_path())
    if problem:
        findings.problems.append(f"log.path: {problem}")


def _ports(config: Config, host: str | None, port: int | None, findings: Findings) -> None:
    for i, local in enumerate(config.local):
        if local.port is not None:
            problem = listen_problem(LOCAL_HOST, local.port)
            if problem:
                findings.busy.append(f"local[{i}].port: {problem}")
    problem = listen_problem(host or config.server.host, port or config.server.port)
    if problem:
        findings.busy.append(f"server.port: {problem}")


def check(config: Config, host: str | None = None, port: int | None = None) -> Findings:
    """Everything about a valid configuration that would stop ``serve`` or weaken it.

    ``host`` / ``port`` are ``serve``'s ``--host`` / ``--port`` overrides.
    """
    findings = Findings()
    _routers(config, findings)
    _local(config, findings)
    _log(config, findings)
    _ports(config, host, port, findings)
    return findings


def check_partial(partial: Partial) -> list[str]:
    """The machine checks of the valid entries of an invalid file (problems only)."""
    findings = Findings()
    for i, rc in partial.routers:
        if rc.path is not None:
            where = f"routers[{i}]"
            _router(findings, where, lambda rc=rc, where=where: load_trained(
                rc, [m for m in partial.pool if rc.models is None or m in rc.models], where))
    for i, local in partial.local:
        findings.problems += local_problems(local, f"local[{i}]")
    return findings.problems


def examine(path: str | None, host: str | None = None, port: int | None = None) -> Examined:
    """Load the configuration at ``path`` (None: the default pool) and check it all."""
    if path is None:
        return Examined(DEFAULT_SOURCE, (config := default_config(os.environ)),
                        check(config, host, port))
    try:
        config = load_config(path)
    except ConfigError as exc:
        problems = in_section_order([*exc.problems, *check_partial(exc.partial)],
                                    list(Config.model_fields))
        return Examined(exc.source, None, Findings(problems=problems))
    return Examined(str(path), config, check(config, host, port))
