"""Agents and queues from YAML (`config/agents.yaml`, `config/queues.yaml`), with `file:line:col` errors.

Passwords are turned into digest HA1 values (MD5 and SHA-256, RFC 7616) as the file
is read and the clear text is dropped; production files can give `ha1_md5` and
`ha1_sha256` instead of `password`. The demo passwords (`demo-<id>`) are remembered
so the server can refuse to listen beyond loopback while any is configured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acd.errors import AcdConfigError
from acd.model import AgentConfig, QueueConfig
from ivr.diagnostics import Diagnostic
from ivr.yamlpos import Located, compose_located
from signaling.auth import Credentials, ha1

from .config import ConfigError

AGENT_KEYS = {"id", "name", "extension", "password", "ha1_md5", "ha1_sha256", "skills", "queues"}
QUEUE_KEYS = set(QueueConfig.__dataclass_fields__) - {"name"}


@dataclass
class AcdSettings:
    agents: dict[str, AgentConfig] = field(default_factory=dict)
    credentials: dict[str, Credentials] = field(default_factory=dict)
    queues: dict[str, QueueConfig] = field(default_factory=dict)
    demo_passwords: set[str] = field(default_factory=set)  # agent ids


def load_acd(agents_path: Path | None, queues_path: Path | None, realm: str) -> AcdSettings:
    settings = AcdSettings()
    errors: list[Diagnostic] = []
    if queues_path is not None:
        errors += _Reader(queues_path).queues(settings)
    if agents_path is not None:
        errors += _Reader(agents_path).agents(settings, realm)
    if errors:
        raise ConfigError(errors)
    return settings


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.loc: Located = compose_located(path.read_text(encoding="utf-8"), str(path))
        self.errors: list[Diagnostic] = []

    def error(self, keypath: tuple[str | int, ...], message: str, *, key: bool = False) -> None:
        line, col = self.loc.key_pos(keypath) if key else self.loc.value_pos(keypath)
        self.errors.append(Diagnostic(str(self.path), line, col, message))

    def section(self, name: str, kind: type) -> Any:
        data = self.loc.data
        if not isinstance(data, dict) or not isinstance(data.get(name), kind):
            what = "a list" if kind is list else "a mapping"
            self.error((name,) if isinstance(data, dict) and name in data else (),
                       f"'{name}' must be {what}")
            return None
        return data[name]

    def queues(self, settings: AcdSettings) -> list[Diagnostic]:
        queues = self.section("queues", dict)
        for name, spec in (queues or {}).items():
            path: tuple[str | int, ...] = ("queues", name)
            if not isinstance(spec, dict):
                self.error(path, f"queue {name}: expected a mapping")
                continue
            self._unknown(spec, QUEUE_KEYS, path, f"queue {name}")
            known = {k: v for k, v in spec.items() if k in QUEUE_KEYS}
            try:
                settings.queues[str(name)] = QueueConfig(name=str(name), **known)
            except (AcdConfigError, TypeError) as exc:
                self.error(self._culprit(path, spec, str(exc)), str(exc))
        for queue in settings.queues.values():
            target = queue.overflow
            if target and not target.startswith("node:") and target not in settings.queues:
                self.error(("queues", queue.name, "overflow"),
                           f"queue {queue.name}: overflow to unknown queue '{target}'")
        return self.errors

    def agents(self, settings: AcdSettings, realm: str) -> list[Diagnostic]:
        agents = self.section("agents", list)
        for i, spec in enumerate(agents or ()):
            path: tuple[str | int, ...] = ("agents", i)
            if not isinstance(spec, dict) or "id" not in spec:
                self.error(path, "an agent needs at least 'id'")
                continue
            agent_id = str(spec["id"])
            if agent_id in settings.agents:
                self.error(path + ("id",), f"agent {agent_id} is defined twice")
                continue
            self._unknown(spec, AGENT_KEYS, path, f"agent {agent_id}")
            try:
                settings.agents[agent_id] = AgentConfig(
                    id=agent_id, name=str(spec.get("name", agent_id)),
                    extension=str(spec.get("extension", agent_id)),
                    skills=spec.get("skills") or {}, queues=spec.get("queues") or {})
            except AcdConfigError as exc:
                self.error(self._culprit(path, spec, str(exc)), str(exc))
                continue
            for queue in settings.agents[agent_id].queues:
                if queue not in settings.queues:
                    self.error(path + ("queues", queue), f"agent {agent_id}: unknown queue '{queue}'",
                               key=True)
            creds = self._credentials(agent_id, spec, path, realm)
            if creds is not None:
                settings.credentials[agent_id] = creds
                if spec.get("password") == f"demo-{agent_id}":
                    settings.demo_passwords.add(agent_id)
        return self.errors

    def _credentials(self, agent_id: str, spec: dict[str, Any], path: tuple[str | int, ...],
                     realm: str) -> Credentials | None:
        password = spec.get("password")
        if password is not None:
            if not isinstance(password, str) or len(password) < 8:
                self.error(path + ("password",), f"agent {agent_id}: password needs 8+ characters")
                return None
            return Credentials(agent_id, realm, ha1(agent_id, realm, password, "MD5"),
                               ha1(agent_id, realm, password, "SHA-256"))
        md5, sha = spec.get("ha1_md5"), spec.get("ha1_sha256")
        if isinstance(md5, str) and isinstance(sha, str) and len(md5) == 32 and len(sha) == 64:
            return Credentials(agent_id, realm, md5.lower(), sha.lower())
        self.error(path, f"agent {agent_id}: give 'password' or both 'ha1_md5' and 'ha1_sha256'")
        return None

    def _unknown(self, spec: dict[str, Any], allowed: set[str], path: tuple[str | int, ...],
                 what: str) -> None:
        for key in spec:
            if key not in allowed:
                self.error(path + (key,), f"{what}: unknown key '{key}' (known: "
                           f"{', '.join(sorted(allowed))})", key=True)

    @staticmethod
    def _culprit(path: tuple[str | int, ...], spec: dict[str, Any], message: str) -> tuple[str | int, ...]:
        """Point at the key the model's message names, else at the entry."""
        words = message.replace(":", " ").split()
        for key in spec:
            if key in words or key.rstrip("s") in words:  # 'skills' for "skill a: level 11"
                return path + (key,)
        return path
