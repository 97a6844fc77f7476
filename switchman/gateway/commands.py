"""The gateway's CLI subcommands: ``serve``, ``config check``, ``spend``.

``switchman.cli`` calls :func:`register`; each subcommand sets ``func(args) -> exit code``.
Heavy imports (uvicorn, the app, routers) happen inside the functions so ``switchman --help``
stays fast. ``python -m switchman.gateway`` runs the same commands without the main CLI.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
import time
from typing import Any

logger = logging.getLogger(__name__)


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


def _load(path: str | None) -> Any:
    """The configuration at ``path`` (or $SWITCHMAN_CONFIG), else the default pool."""
    from switchman.config import load_config
    from switchman.gateway.defaults import default_config

    path = path or os.environ.get("SWITCHMAN_CONFIG")
    return load_config(path) if path else default_config()


def _refuse(source: str, problems: list[str], warnings: list[str]) -> None:
    """The lines both ``serve`` and ``config check`` print for a configuration serve refuses."""
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    _err(f"{source}: serve refuses this configuration ({count}):")
    for problem in problems:
        _err(f"  {problem}")
    for note in warnings:
        _err(f"  warning: {note}")


def _start_local_models(app: Any, source: str) -> bool:
    """Start the ``local:`` models before the ASGI server runs; False (reported) if one fails."""
    from switchman.gateway.execute.local import LocalModelError

    gateway = app.state.gateway
    try:
        gateway.start_local_models()
    except (LocalModelError, OSError) as exc:  # OSError: a missing file, a start-up timeout
        _stop_local_models(app)
        _err(f"{source}: a local model cannot start:")
        for line in str(exc).splitlines():
            _err(f"  {line}")
        return False
    return True


def _stop_local_models(app: Any) -> None:
    for server in app.state.gateway.local_servers:
        server.stop()


def serve(args: argparse.Namespace) -> int:
    """Run the gateway, after every check ``config check`` runs (refused: exit 2, no trace)."""
    import uvicorn

    from switchman.gateway.api.server import server_options
    from switchman.gateway.app import create_app
    from switchman.gateway.preflight import examine

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per upstream call is noise
    examined = examine(args.config or os.environ.get("SWITCHMAN_CONFIG"), args.host, args.port)
    findings, config = examined.findings, examined.config
    listen_fd = os.environ.get(_LISTEN_FD)
    if listen_fd is not None:  # a worker: the parent holds the port it was handed
        findings.busy = [b for b in findings.busy if not b.startswith("server.port")]
    if args.workers < 1:
        findings.problems.append(f"--workers {args.workers}: at least 1")
    elif config is not None and args.workers > 1 and config.local:
        findings.problems.append("--workers > 1 with local models: each worker would start "
                                 "its own llama.cpp servers on the same ports; run them "
                                 "apart or use one worker")
    if config is None or findings.problems or findings.busy:
        _refuse(examined.source, [*findings.problems, *findings.busy], findings.warnings)
        return 2
    for note in findings.warnings:
        logger.warning("%s", note)
    host = args.host or config.server.host
    port = args.port or config.server.port
    if args.workers > 1:
        return _serve_workers(args, host, port)
    app = create_app(config, scorers=findings.scorers)
    if not _start_local_models(app, examined.source):
        return 2
    _collect_garbage_less_often()
    try:
        if listen_fd is None:
            uvicorn.run(app, host=host, port=port, log_level="info", **server_options(config))
        else:
            # Not uvicorn's fd=: it takes a passed socket for a Unix one, so its TCP
            # connections never got TCP_NODELAY and every answer written in two pieces
            # waited out delayed ACKs (2 workers served 1,450 requests/s where 1 served
            # 6,000, both mostly idle). socket(fileno=) reads the socket's real family.
            import socket

            server = uvicorn.Server(uvicorn.Config(app, log_level="info",
                                                   **server_options(config)))
            server.run(sockets=[socket.socket(fileno=int(listen_fd))])
    finally:
        _stop_local_models(app)  # already stopped by the lifespan unless uvicorn never ran it
    return 0


def _collect_garbage_less_often() -> None:
    """Tune CPython's cyclic garbage collector for a server process, once the app is built.

    Every request allocates many short-lived container objects (ASGI scope, headers, parsed
    JSON, tasks, futures), so with the default young threshold of 700 collections run
    nearly all the time, and the full ones walk every object imported at start-up. Here,
    everything alive once the app is built (modules, configuration, loaded routers) is
    frozen out of the collector's sight, and a young collection waits for 20,000 net
    allocations (a few MB of young objects at most). Against an instant upstream at
    concurrency 32 (wrk, as in benchmarks/gateway_overhead.py, runs alternated) a
    pool-model request went from 1,440-1,600 to 2,040-2,120 requests/s and its p99 from
    92-98 ms to 24-28 ms; the soak test's memory stayed as flat as before.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)


def config_check(args: argparse.Namespace) -> int:
    """Validate a file with exactly ``serve``'s checks; exit 1 on anything serve refuses."""
    from switchman.gateway.preflight import examine
    from switchman.gateway.service import unavailable_models

    examined = examine(args.file)
    findings, config = examined.findings, examined.config
    if config is None or findings.problems:
        _refuse(examined.source, findings.problems, findings.warnings)
        return 1
    _out(f"{args.file}: valid")
    _out(f"  models:  {', '.join(m.name for m in config.models)}")
    _out(f"  routers: {', '.join(r.name for r in config.routers)}")
    if config.local:
        _out(f"  local:   {', '.join(lm.name for lm in config.local)} (started by serve)")
    _out(f"  log:     {config.log.resolved_path()}"
         f"{' (with prompts)' if config.log.store_prompts else ''}")
    _out("  knowledge (where each router's estimate of each pool model comes from):")
    for line in findings.knowledge:
        _out(f"    {line}")
    notes = [f"models: {name} unavailable: {why}"
             for name, why in unavailable_models(config.models, os.environ).items()]
    notes += findings.warnings
    notes += [f"{busy} (right now: serve would refuse to start)" for busy in findings.busy]
    for note in notes:
        _out(f"  warning: {note}")
    return 0


def spend_command(args: argparse.Namespace) -> int:
    from switchman.config import ConfigError
    from switchman.gateway.record.accounting import format_spend, spend

    try:
        config = _load(args.config)
    except ConfigError as exc:
        _err(f"switchman spend: {exc}")
        return 2
    since = time.time() - args.hours * 3600 if args.hours else None
    try:
        report = spend(config.log.resolved_path(), since)
    except FileNotFoundError as exc:
        _err(f"switchman spend: {exc}")
        return 1
    _out(json.dumps(report, indent=2) if args.json else format_spend(report).rstrip())
    return 0


def format_status(status: dict[str, Any]) -> str:
    """The ``GET /v1/status`` answer as a plain-text table, one line per model."""
    cols = ["model", "circuit", "in_flight", "max", "calls", "failures", "opened",
            "retry_in_s", "note"]
    rows = [[m["model"], m["circuit"], m["in_flight"], m["max_in_flight"], m["window_calls"],
             m["window_failures"], m["opened_total"], m["retry_after_s"] or "",
             m.get("unavailable") or ""] for m in status["models"]]
    widths = [max(len(str(v)) for v in [c, *(r[i] for r in rows)]) for i, c in enumerate(cols)]
    lines = ["  ".join(f"{v!s:<{w}}" for v, w in zip(row, widths, strict=True)).rstrip()
             for row in [cols, *rows]]
    lines.append(f"gateway: {status['in_flight']}/{status['max_in_flight']} requests in "
                 f"flight, {status['rejected_overload']} shed since start, up "
                 f"{status['uptime_s']:.0f}s; log {status['decision_log']['path']}")
    return "\n".join(lines)


def status_command(args: argparse.Namespace) -> int:
    """Ask a running gateway for its breakers and load (``GET /v1/status``)."""
    import httpx

    from switchman.config import ConfigError

    url = args.url
    if url is None:
        try:
            config = _load(args.config)
        except (ConfigError, FileNotFoundError) as exc:
            _err(f"switchman status: {exc}")
            return 2
        url = f"http://{config.server.host}:{config.server.port}"
    key = os.environ.get("SWITCHMAN_API_KEY")
    headers = {"authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.get(f"{url.rstrip('/')}/v1/status", headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        _err(f"switchman status: cannot reach the gateway at {url}: {exc}")
        return 1
    if response.status_code != 200:
        _err(f"switchman status: {url} answered {response.status_code}: {response.text[:300]}")
        return 1
    status = response.json()
    _out(json.dumps(status, indent=2) if args.json else format_status(status))
    return 0


#: Set for a worker of ``serve --workers N``: the listening socket its parent bound.
_LISTEN_FD = "SWITCHMAN_LISTEN_FD"


def _serve_workers(args: argparse.Namespace, host: str, port: int) -> int:
    """``serve --workers N``: bind the port once, run N ``serve`` processes accepting on
    that one socket (the kernel hands each connection to one of them), and stop them all
    on SIGINT/SIGTERM. One Python process uses one core at most; N of them share the
    port's load. They share breakers, stickiness, response ids and budgets only through
    ``state: {url: redis://...}``; in-flight limits stay per process."""
    import signal
    import socket
    import subprocess

    sock = socket.create_server((host, port), backlog=2048,
                                family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.set_inheritable(True)
    cmd = [sys.executable, "-m", "switchman.gateway", "serve", "--workers", "1",
           "--host", host, "--port", str(port)] + (["--config", args.config] if args.config
                                                  else [])
    env = {**os.environ, _LISTEN_FD: str(sock.fileno())}
    children = [subprocess.Popen(cmd, env=env, pass_fds=(sock.fileno(),))
                for _ in range(args.workers)]
    logger.info("switchman: %d workers on %s:%d (pids %s)", args.workers, host, port,
                " ".join(str(c.pid) for c in children))

    def stop(signum: int, _frame: Any) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    codes = [child.wait() for child in children]
    sock.close()
    return max(codes, key=abs)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``serve``, ``config check``, ``spend`` and ``status`` to the main CLI."""
    p = subparsers.add_parser("serve", help="run the OpenAI-compatible gateway")
    p.add_argument("--config", help="YAML configuration (default: $SWITCHMAN_CONFIG, else "
                   "the local model plus hosted models whose API keys are set)")
    p.add_argument("--host", default=None, help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="listen port (default 8000)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes serving the one port (default 1; one core each; share "
                        "state through state.url, see docs/gateway.md)")
    p.set_defaults(func=serve)

    p = subparsers.add_parser("config", help="work with configuration files")
    sub = p.add_subparsers(dest="config_command", required=True)
    c = sub.add_parser("check", help="validate a configuration and report problems")
    c.add_argument("file")
    c.set_defaults(func=config_check)

    p = subparsers.add_parser("spend", help="dollars per model, router and API key")
    p.add_argument("--config", help="configuration naming the decision log")
    p.add_argument("--hours", type=float, default=None, help="only the last N hours")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=spend_command)

    p = subparsers.add_parser("status", help="circuit breakers and load of a running gateway")
    p.add_argument("--config", help="configuration naming the gateway's host and port")
    p.add_argument("--url", default=None, help="gateway base URL, e.g. http://127.0.0.1:8000")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=status_command)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="switchman-gateway")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))
