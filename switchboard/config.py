"""Server configuration: one YAML file, refused with `file:line:col: message` when wrong.

Paths inside the file (prompts, flows) are relative to the file; the data dir is
relative to the working directory, as operators expect from `--data-dir`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivr.diagnostics import Diagnostic, FlowError
from ivr.yamlpos import Located, compose_located

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
DEMO_CONFIG = PACKAGE_ROOT / "config" / "switchboard.yaml"

_TOP_KEYS = {"sip", "http", "rtp", "media", "prompts", "flows", "data_dir", "dids", "limits",
             "log_level", "agents", "queues", "realm", "users", "recording",
             "streams", "analytics"}
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


class ConfigError(FlowError):
    """A mistake in the server configuration (same shape as a flow error)."""


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str, default_port: int) -> HostPort:
        text = text.strip()
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            port = rest.lstrip(":") or str(default_port)
        elif text.count(":") == 1:
            host, port = text.split(":")
        else:
            host, port = text, str(default_port)
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected HOST:PORT, got {text!r}")
        return cls(host, int(port))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_port_range(text: str) -> tuple[int, int]:
    low, sep, high = str(text).partition("-")
    if not sep or not low.strip().isdigit() or not high.strip().isdigit():
        raise ValueError(f"expected LO-HI, got {text!r}")
    lo, hi = int(low), int(high)
    if not 1024 <= lo < hi <= 65535 or hi - lo < 2:
        raise ValueError(f"port range {lo}-{hi} must lie within 1024-65535 and hold two ports")
    return lo, hi


@dataclass
class RecordingConfig:
    """Which calls are recorded (the most specific setting wins: queue, flow, DID)."""

    enabled: bool = True  # the default for calls no DID/flow/queue setting names
    retention_days: float = 90.0  # 0 keeps recordings forever
    directory: Path | None = None  # default: DATA_DIR/recordings
    dids: dict[str, bool] = field(default_factory=dict)
    flows: dict[str, bool] = field(default_factory=dict)
    queues: dict[str, bool] = field(default_factory=dict)

    def at_start(self, did: str, flow: str) -> bool:
        if flow in self.flows:
            return self.flows[flow]
        return self.dids.get(did, self.enabled)


@dataclass
class ServerConfig:
    source: Path
    sip: HostPort = field(default_factory=lambda: HostPort("127.0.0.1", 5060))
    sip_tcp: bool = True
    http: HostPort = field(default_factory=lambda: HostPort("127.0.0.1", 8080))
    rtp_ports: tuple[int, int] = (20000, 29999)
    rtp_timeout: float = 30.0
    media_ip: str | None = None  # address written in SDP; default: the SIP listen address
    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    media_engine: str = "native"  # the C RTP plane when compiled (media.engine), else python
    realtime_priority: int = 0  # SCHED_FIFO priority of the native media thread; 0: none
    media_nice: int = 0  # the native media thread's nice value when not SCHED_FIFO
    media_slice_us: int = 100  # the native media thread's EEVDF slice request; 0: the kernel's
    background_nice: int = 5  # nice value of the server's other threads (native plane)
    relay_jitter_ms: int = 0  # native plane: relayed audio leaves on the clock this much later
    media_coalesce_us: int = 0  # native plane: packets that woke the media thread wait this
    # long for more before it looks again (never across a sub-tick); 0: look at once
    prompt_dir: Path = PACKAGE_ROOT / "prompts"
    flow_dir: Path = PACKAGE_ROOT / "config" / "flows"
    data_dir: Path = Path("var")
    dids: dict[str, str] = field(default_factory=dict)
    answer_delay: dict[str, float] = field(default_factory=dict)  # DID -> seconds of ringing
    max_calls: int = 2000
    log_level: str = "INFO"
    agents_file: Path | None = None
    queues_file: Path | None = None
    realm: str = "switchboard"
    digest_algorithms: tuple[str, ...] = ("SHA-256", "MD5")  # RFC 8760 order of preference
    users_file: Path | None = None  # supervisors and admins of the web desktop and API
    recording: RecordingConfig = field(default_factory=lambda: RecordingConfig())
    # media streams out (docs/media-streams.md): flow or queue name -> validated setting
    streams_flows: dict[str, dict[str, Any]] = field(default_factory=dict)
    streams_queues: dict[str, dict[str, Any]] = field(default_factory=dict)
    analytics: list[Any] = field(default_factory=list)  # analyzer specs (docs/analytics.md)
    store: str | None = None  # redis://HOST:PORT/DB: a node of a cluster (docs/cluster.md)
    node_id: str | None = None  # this node's name in the cluster (default host-pid-random)

    @property
    def sdp_ip(self) -> str:
        if self.media_ip:
            return self.media_ip
        return "127.0.0.1" if self.sip.host in ("0.0.0.0", "::") else self.sip.host


def load_config(path: Path) -> ServerConfig:
    text = path.read_text(encoding="utf-8")
    located = compose_located(text, str(path))
    return _Builder(path, located).build()


class _Builder:
    def __init__(self, path: Path, located: Located) -> None:
        self.path = path
        self.loc = located
        self.errors: list[Diagnostic] = []

    def error(self, keypath: tuple[str | int, ...], message: str) -> None:
        line, col = self.loc.value_pos(keypath)
        self.errors.append(Diagnostic(str(self.path), line, col, message))

    def section(self, name: str) -> dict[str, Any]:
        value = self.loc.data.get(name, {}) if isinstance(self.loc.data, dict) else {}
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error((name,), f"'{name}' must be a mapping")
            return {}
        return value

    def build(self) -> ServerConfig:
        data = self.loc.data
        cfg = ServerConfig(source=self.path)
        if data is None:
            return cfg
        if not isinstance(data, dict):
            self.error((), "the configuration must be a mapping")
            raise ConfigError(self.errors)
        for key in data:
            if key not in _TOP_KEYS:
                line, col = self.loc.key_pos((key,))
                self.errors.append(Diagnostic(str(self.path), line, col,
                                              f"unknown key '{key}' (known: {', '.join(sorted(_TOP_KEYS))})"))
        self._network(cfg)
        self._paths(cfg, data)
        self._dids(cfg, data)
        self._recording(cfg)
        self._streams(cfg)
        analytics = data.get("analytics") or []
        try:
            from recorder.hooks import load_factories

            load_factories(analytics)  # unknown names, bad paths and options fail here
            cfg.analytics = analytics
        except ValueError as exc:
            self.error(("analytics",), str(exc))
        if self.errors:
            raise ConfigError(self.errors)
        return cfg

    def _network(self, cfg: ServerConfig) -> None:
        sip, http, rtp, media = (self.section(n) for n in ("sip", "http", "rtp", "media"))
        self._try(("sip", "listen"), lambda: setattr(
            cfg, "sip", HostPort.parse(str(sip.get("listen", cfg.sip)), 5060)))
        cfg.sip_tcp = "tcp" in [str(t).lower() for t in sip.get("transports", ["udp", "tcp"])]
        algorithms = sip.get("digest_algorithms", list(cfg.digest_algorithms))
        if (not isinstance(algorithms, list) or not algorithms
                or any(a not in ("SHA-256", "MD5") for a in algorithms)):
            self.error(("sip", "digest_algorithms"), "sip.digest_algorithms lists SHA-256 and/or MD5")
        else:
            cfg.digest_algorithms = tuple(algorithms)
        self._try(("http", "listen"), lambda: setattr(
            cfg, "http", HostPort.parse(str(http.get("listen", cfg.http)), 8080)))
        self._try(("rtp", "ports"), lambda: setattr(
            cfg, "rtp_ports", parse_port_range(rtp.get("ports", "20000-29999"))))
        timeout = rtp.get("timeout", cfg.rtp_timeout)
        if not isinstance(timeout, int | float) or timeout < 0:
            self.error(("rtp", "timeout"), "rtp.timeout must be a number of seconds >= 0")
        else:
            cfg.rtp_timeout = float(timeout)
        cfg.media_ip = rtp.get("advertise") or None
        codecs = media.get("codecs", list(cfg.codecs))
        if not isinstance(codecs, list) or not codecs or any(c not in ("PCMU", "PCMA") for c in codecs):
            self.error(("media", "codecs"), "media.codecs must list PCMU and/or PCMA")
        else:
            cfg.codecs = tuple(codecs)
        engine = media.get("engine", cfg.media_engine)
        if engine not in ("native", "python"):
            self.error(("media", "engine"), "media.engine must be native or python")
        else:
            cfg.media_engine = engine
        for key, attr, low, high, what in (
                ("realtime_priority", "realtime_priority", 0, 99, "0 (off) to 99"),
                ("nice", "media_nice", -20, 19, "-20 to 19"),
                ("slice_us", "media_slice_us", 0, 100000, "0 (the kernel's) to 100000"),
                ("background_nice", "background_nice", 0, 19, "0 to 19"),
                ("relay_jitter_ms", "relay_jitter_ms", 0, 200, "0 (relay as received) to 200"),
                ("coalesce_us", "media_coalesce_us", 0, 4000, "0 (look at once) to 4000")):
            value = media.get(key, getattr(cfg, attr))
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                self.error(("media", key), f"media.{key} must be an integer from {what}")
            else:
                setattr(cfg, attr, value)
        limits = self.section("limits")
        max_calls = limits.get("max_calls", cfg.max_calls)
        if not isinstance(max_calls, int) or max_calls < 1:
            self.error(("limits", "max_calls"), "limits.max_calls must be a positive integer")
        else:
            cfg.max_calls = max_calls

    def _paths(self, cfg: ServerConfig, data: dict[str, Any]) -> None:
        base = self.path.parent
        for key, attr in (("prompts", "prompt_dir"), ("flows", "flow_dir")):
            if key in data:
                target = (base / str(data[key])).resolve()
                if not target.is_dir():
                    self.error((key,), f"'{key}' directory not found: {target}")
                setattr(cfg, attr, target)
        for key, attr in (("agents", "agents_file"), ("queues", "queues_file"), ("users", "users_file")):
            if data.get(key):
                target = (base / str(data[key])).resolve()
                if not target.is_file():
                    self.error((key,), f"'{key}' file not found: {target}")
                setattr(cfg, attr, target)
        cfg.realm = str(data.get("realm", cfg.realm))
        if "data_dir" in data:
            cfg.data_dir = Path(str(data["data_dir"]))
        cfg.log_level = str(data.get("log_level", cfg.log_level)).upper()

    def _dids(self, cfg: ServerConfig, data: dict[str, Any]) -> None:
        dids = data.get("dids", {})
        if not isinstance(dids, dict):
            self.error(("dids",), "'dids' must map dialed numbers to flow names")
            return
        for did, target in dids.items():
            if isinstance(target, dict):
                if not isinstance(target.get("flow"), str):
                    self.error(("dids", did), "a DID mapping needs 'flow: NAME'")
                    continue
                delay = target.get("answer_delay", 0)
                if not isinstance(delay, int | float) or not 0 <= delay <= 300:
                    self.error(("dids", did, "answer_delay"), "answer_delay must be 0-300 seconds")
                    continue
                cfg.dids[str(did)] = target["flow"]
                cfg.answer_delay[str(did)] = float(delay)
            else:
                cfg.dids[str(did)] = str(target)

    def _recording(self, cfg: ServerConfig) -> None:
        section = self.section("recording")
        rec = cfg.recording
        for key in section:
            if key not in ("enabled", "retention_days", "directory", "dids", "flows", "queues"):
                self.error(("recording", key), f"unknown key 'recording.{key}'")
        enabled = section.get("enabled", rec.enabled)
        if not isinstance(enabled, bool):
            self.error(("recording", "enabled"), "recording.enabled must be true or false")
        else:
            rec.enabled = enabled
        days = section.get("retention_days", rec.retention_days)
        if isinstance(days, bool) or not isinstance(days, int | float) or days < 0:
            self.error(("recording", "retention_days"),
                       "recording.retention_days must be a number of days >= 0 (0 keeps forever)")
        else:
            rec.retention_days = float(days)
        if section.get("directory"):
            rec.directory = Path(str(section["directory"]))
        for kind in ("dids", "flows", "queues"):
            table = section.get(kind, {}) or {}
            if not isinstance(table, dict):
                self.error(("recording", kind), f"recording.{kind} maps names to true/false")
                continue
            for name, value in table.items():
                if not isinstance(value, bool):
                    self.error(("recording", kind, name), f"recording.{kind}.{name} must be true or false")
                else:
                    getattr(rec, kind)[str(name)] = value

    def _streams(self, cfg: ServerConfig) -> None:
        from recorder.mediastream import validate_stream_config

        section = self.section("streams")
        for kind, target in (("flows", cfg.streams_flows), ("queues", cfg.streams_queues)):
            table = section.get(kind, {}) or {}
            if not isinstance(table, dict):
                self.error(("streams", kind), f"streams.{kind} maps names to a stream setting")
                continue
            for name, value in table.items():
                try:
                    target[str(name)] = validate_stream_config(value)
                except ValueError as exc:
                    self.error(("streams", kind, name), str(exc))
        for key in section:
            if key not in ("flows", "queues"):
                self.error(("streams", key), f"unknown key 'streams.{key}' (known: flows, queues)")

    def _try(self, keypath: tuple[str | int, ...], fn: Any) -> None:
        try:
            fn()
        except ValueError as exc:
            self.error(keypath, str(exc))
