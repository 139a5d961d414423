"""`switchboard` command line: run, lint, flow test."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from . import logs
from .cluster import ClusterError, check_url
from .config import DEMO_CONFIG, ConfigError, HostPort, ServerConfig, load_config, parse_port_range

log = logging.getLogger("switchboard")


def _run_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="run the server (the bundled demo without --config)")
    p.add_argument("--config", type=Path, help="server YAML (default: the bundled demo config)")
    p.add_argument("--sip", help="SIP listen HOST:PORT, UDP and TCP (default 127.0.0.1:5060)")
    p.add_argument("--http", help="HTTP listen HOST:PORT (default 127.0.0.1:8080)")
    p.add_argument("--rtp-ports", help="RTP port range LO-HI (default 20000-29999)")
    p.add_argument("--data-dir", type=Path, help="where CDRs and recordings go (default ./var)")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING (default INFO)")
    p.add_argument("--store", help="redis://HOST:PORT/DB: share agents, queues and registrations "
                   "with the other processes on that Redis (default: in memory, one process)")
    p.add_argument("--node-id", help="this process's name in a --store cluster "
                   "(default HOST-PID-RANDOM)")


def _user_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("user", help="web/API users: switchboard user add NAME --role ROLE")
    p.add_argument("action", choices=["add"])
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=["supervisor", "admin"])
    p.add_argument("--config", type=Path, help="server YAML whose users file to write")
    p.add_argument("--file", type=Path, help="users file (default: the config's `users:`, "
                   "else DATA_DIR/users.yaml)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")


def build_config(args: argparse.Namespace) -> ServerConfig:
    cfg = load_config(args.config or DEMO_CONFIG)
    try:
        if args.sip:
            cfg.sip = HostPort.parse(args.sip, 5060)
        if args.http:
            cfg.http = HostPort.parse(args.http, 8080)
        if args.rtp_ports:
            cfg.rtp_ports = parse_port_range(args.rtp_ports)
    except ValueError as exc:
        raise SystemExit(f"switchboard: {exc}") from exc
    if args.data_dir:
        cfg.data_dir = args.data_dir
    if args.log_level:
        cfg.log_level = args.log_level.upper()
    if args.store:
        try:
            cfg.store = check_url(args.store)
        except ClusterError as exc:
            raise SystemExit(f"switchboard: {exc}") from exc
    if args.node_id:
        cfg.node_id = args.node_id
    return cfg


def run(args: argparse.Namespace) -> int:
    try:
        cfg = build_config(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    logs.setup(cfg.log_level)
    try:
        import uvloop
    except ImportError:
        uvloop = None  # type: ignore[assignment]
    if os.environ.get("SWITCHBOARD_EVENT_LOOP") == "asyncio":
        uvloop = None  # type: ignore[assignment]  # for asyncio's debug mode and comparisons
    runner = uvloop.run if uvloop is not None else asyncio.run
    log.info("event=starting event_loop=%s", "uvloop" if uvloop is not None else "asyncio")
    try:
        runner(_serve(cfg))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except (OSError, ClusterError) as exc:
        log.error("event=start_failed error=%s", exc)
        return 1
    return 0


def raise_fd_limit(max_calls: int) -> int:
    """Descriptors for `max_calls`: a call holds an RTP socket per leg (two when bridged),
    plus recordings, SIP over TCP and HTTP. Raises the soft limit (1024 on many systems)
    as far as the hard limit allows, like Asterisk's `maxfiles`; returns the limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max_calls * 3 + 1024
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        soft = want
    if soft != resource.RLIM_INFINITY and soft < max_calls * 3 + 1024:
        log.warning("event=fd_limit limit=%d max_calls=%d note=\"raise the hard limit "
                    "(ulimit -Hn) to take max_calls\"", soft, max_calls)
    return int(soft)


async def _serve(cfg: ServerConfig) -> None:
    from .server import Server

    raise_fd_limit(cfg.max_calls)

    loop = asyncio.get_running_loop()
    if loop.get_debug():
        loop.slow_callback_duration = 0.005  # a media tick is 20 ms: 5 ms is already slow
    server = Server(cfg)
    await server.start()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("event=stopping calls=%d", len(server.calls))
    await server.stop()


def why(argv: Sequence[str]) -> int:
    """`switchboard why CALL_ID [--http HOST:PORT]`: why each offer went to whom."""
    import json
    import urllib.error
    import urllib.parse
    import urllib.request

    parser = argparse.ArgumentParser(prog="switchboard why",
                                     description="explain the ACD's routing of one call")
    parser.add_argument("call_id")
    parser.add_argument("--http", default="127.0.0.1:8080", help="the server's HTTP HOST:PORT")
    args = parser.parse_args(argv)
    url = f"http://{args.http}/api/calls/{urllib.parse.quote(args.call_id, safe='')}/why"
    token = os.environ.get("SWITCHBOARD_TOKEN")  # a supervisor's token from POST /api/login
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            body = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        detail = json.loads(exc.read() or b"{}").get("error", exc.reason)
        print(f"switchboard why: {detail}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"switchboard why: cannot reach {args.http}: {exc}", file=sys.stderr)
        return 2
    for decision in body["decisions"]:
        print(decision)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["flow", "test"]:
        from ivr.simulator import main_flow_test

        return main_flow_test(argv[2:])
    if argv[:1] == ["bench"]:
        from .bench import main_bench

        return main_bench(argv[1:])
    if argv[:1] == ["why"]:
        return why(argv[1:])
    if argv[:1] == ["analyze"]:
        from recorder.replay import main_analyze

        return main_analyze(argv[1:])
    if argv[:1] == ["lint"]:
        from ivr.simulator import main_lint

        return main_lint(argv[1:])
    parser = argparse.ArgumentParser(prog="switchboard", description="Contact-center server")
    sub = parser.add_subparsers(dest="command", required=True)
    _run_parser(sub)
    _user_parser(sub)
    sub.add_parser("lint", help="check flow files: switchboard lint [PATH...] [--prompts DIR]")
    sub.add_parser("bench", help="SIPp load through the demo IVR: switchboard bench --help")
    sub.add_parser("why", help="why the ACD offered a call to whom: switchboard why CALL_ID")
    sub.add_parser("analyze", help="replay a recording through analyzers: "
                   "switchboard analyze RECORDING [--analyzer NAME] [--json]")
    flow = sub.add_parser("flow", help="flow tools: switchboard flow test FILE --digits 1234#")
    flow.add_argument("action", choices=["test"])
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args)
    if args.command == "user":
        from .webauth import main_user

        return main_user(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
