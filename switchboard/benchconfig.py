"""The server config `switchboard bench` starts its own server with: the demo config with
the bench's agents and queues, and the options that change what is measured."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

from . import benchivr

REPO = Path(__file__).resolve().parent.parent


@dataclass
class BenchConfig:
    path: Path
    agent_ids: list[str] = field(default_factory=list)
    agent_passwords: dict[str, str] = field(default_factory=dict)


def needs_own(args: argparse.Namespace) -> bool:
    """Whether the options need a config of the bench's own (else the demo's)."""
    return bool(args.agents or args.no_record or args.analytics or args.ivr == "quick"
                or args.media_engine or args.relay_jitter_ms or args.realtime_priority
                or args.media_slice_us is not None or args.background_nice is not None
                or args.media_coalesce_us is not None)


# (option attribute, lowest, highest, the error message): checked by `media_error`
MEDIA_RANGES = (
    ("relay_jitter_ms", 0, 200, "--relay-jitter-ms: 0 to 200"),
    ("realtime_priority", 0, 99, "--realtime-priority: 0 (normal) to 99"),
    ("media_slice_us", 0, 100000, "--media-slice-us: 0 (the kernel's) to 100000"),
    ("media_coalesce_us", 0, 4000, "--media-coalesce-us: 0 (look at once) to 4000"),
    ("background_nice", 0, 19, "--background-nice: 0 to 19"),
)


def media_error(args: argparse.Namespace) -> str | None:
    """The first media option out of its range (an option left unset is fine), or None."""
    for name, low, high, message in MEDIA_RANGES:
        value = getattr(args, name)
        if value is not None and not low <= value <= high:
            return message
    return None


def write(args: argparse.Namespace, report_dir: Path) -> BenchConfig:
    """The demo config, with `--agents` agents (2001...) serving both queues (wrap-up
    2 s), recording off with `--no-record`, the `--analytics` analyzers, and the media
    plane options (`--media-engine`, `--relay-jitter-ms`, `--realtime-priority`,
    `--media-slice-us`, `--media-coalesce-us`, `--background-nice`)."""
    cfg = (REPO / "config/switchboard.yaml").read_text()
    for old, new in (("prompts: ../prompts", f"prompts: {REPO / 'prompts'}"),
                     ("flows: flows", f"flows: {REPO / 'config/flows'}"),
                     ("agents: agents.yaml", f"agents: {REPO / 'config/agents.yaml'}"),
                     ("queues: queues.yaml", f"queues: {REPO / 'config/queues.yaml'}")):
        cfg = cfg.replace(old, new)
    out = BenchConfig(report_dir / "switchboard.yaml")
    if args.agents:
        cfg = _agents(args, report_dir, cfg, out)
    if args.ivr == "quick":
        cfg = benchivr.configure(cfg, report_dir)
    if args.no_record:
        cfg = cfg.replace("recording:\n  enabled: true", "recording:\n  enabled: false")
    if args.analytics:
        cfg += f"analytics: [{args.analytics}]\n"
    media = []
    if args.media_engine:
        media.append(f"  engine: {args.media_engine}")
    if args.relay_jitter_ms:
        media.append(f"  relay_jitter_ms: {args.relay_jitter_ms}")
    if args.realtime_priority:
        media.append(f"  realtime_priority: {args.realtime_priority}")
    if args.media_slice_us is not None:
        media.append(f"  slice_us: {args.media_slice_us}")
    if args.background_nice is not None:
        media.append(f"  background_nice: {args.background_nice}")
    if args.media_coalesce_us is not None:
        media.append(f"  coalesce_us: {args.media_coalesce_us}")
    if media:
        cfg = cfg.replace("media:\n", "media:\n" + "\n".join(media) + "\n", 1)
    out.path.write_text(cfg)
    return out


def _agents(args: argparse.Namespace, report_dir: Path, cfg: str, out: BenchConfig) -> str:
    secret = os.urandom(6).hex()
    out.agent_ids = [str(2001 + i) for i in range(args.agents)]
    out.agent_passwords = {a: f"bench-{a}-{secret}" for a in out.agent_ids}
    lines = ["agents:"]
    for agent in out.agent_ids:
        lines += [f"  - id: '{agent}'", f"    password: bench-{agent}-{secret}",
                  "    skills: {billing: 5, support: 5}", "    queues: {billing: 0, support: 0}"]
    (report_dir / "agents.yaml").write_text("\n".join(lines) + "\n")
    queues = (REPO / "config/queues.yaml").read_text().replace("wrapup: 10", "wrapup: 2")
    (report_dir / "queues.yaml").write_text(queues)
    cfg = cfg.replace(f"agents: {REPO / 'config/agents.yaml'}", f"agents: {report_dir / 'agents.yaml'}")
    cfg = cfg.replace(f"queues: {REPO / 'config/queues.yaml'}", f"queues: {report_dir / 'queues.yaml'}")
    logins = [f"{a};[authentication username={a} password=bench-{a}-{secret}]"
              for a in out.agent_ids]
    (report_dir / "agents.csv").write_text("SEQUENTIAL\n" + "\n".join(logins) + "\n")
    return cfg
