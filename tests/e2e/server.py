"""A real `switchboard run` process on free loopback ports, for end-to-end tests."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
_ADMIN_LINE = re.compile(r"event=initial_admin_password user=admin password=(\S+)")


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t, \
                    socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                t.bind(("127.0.0.1", port))
                u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


@dataclass
class RunningServer:
    proc: subprocess.Popen[bytes]
    sip_port: int
    http_port: int
    data_dir: Path
    log_path: Path
    rtp_ports: tuple[int, int]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def sip(self) -> str:
        return f"127.0.0.1:{self.sip_port}"

    def cdrs(self) -> list[dict[str, Any]]:
        path = self.data_dir / "cdr.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def wait_cdrs(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            records = self.cdrs()
            if len(records) >= count:
                return records
            time.sleep(0.1)
        raise AssertionError(f"expected {count} CDRs, have {self.cdrs()}\n{self.log()[-3000:]}")

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/api/health", timeout=5) as r:
            return json.loads(r.read())

    def admin_password(self, timeout: float = 10.0) -> str:
        """The one-time admin password the server logged at its first start."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = _ADMIN_LINE.search(self.log())
            if found:
                return found.group(1)
            if "admin_password" in self.extra:  # logged by an earlier run on this data dir
                return str(self.extra["admin_password"])
            time.sleep(0.1)
        raise AssertionError(f"no initial admin password in the log\n{self.log()[-2000:]}")

    def login(self, user: str = "admin", password: str | None = None) -> str:
        """A bearer token: `admin` (the one-time password), an agent id (demo-<id>), or any
        user of the users file with its password."""
        if password is None:
            password = self.admin_password() if user == "admin" else f"demo-{user}"
        status, body = self.api("POST", "/api/login", {"user": user, "password": password},
                                token=None)
        assert status == 200, (status, body)
        return str(body["token"])

    def api(self, method: str, path: str, body: Any = None, raw: bytes | None = None,
            token: str | None | bool = True) -> tuple[int, Any]:
        """One API call; token=True logs in as the admin (once), None sends no credentials."""
        if token is True:
            token = self.extra.get("admin_token") or self.extra.setdefault("admin_token", self.login())
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=data,
                                     method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                payload = resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            payload, status = exc.read(), exc.code
        try:
            return status, json.loads(payload)
        except ValueError:
            return status, payload.decode(errors="replace")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def options_ok(port: int, timeout: float = 0.5) -> bool:
    # a fresh branch each time: the same branch would match the last ping's transaction
    # (§17.2.3) and the answer would go to that ping's socket
    msg = (f"OPTIONS sip:100@127.0.0.1:{port} SIP/2.0\r\n"
           f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{os.urandom(6).hex()};rport\r\n"
           "From: <sip:ping@127.0.0.1>;tag=p\r\nTo: <sip:100@127.0.0.1>\r\n"
           f"Call-ID: ping-{time.monotonic_ns()}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(timeout)
        s.sendto(msg.encode(), ("127.0.0.1", port))
        try:
            return s.recv(4096).startswith(b"SIP/2.0 200")
        except OSError:
            return False


def write_users(data_dir: Path, users: dict[str, tuple[str, str]]) -> None:
    """DATA_DIR/users.yaml with {name: (role, password)} (hashed as `switchboard user add` does)."""
    from switchboard.webauth import add_user

    for name, (role, password) in users.items():
        add_user(data_dir / "users.yaml", name, role, password)


def _http_up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1):
            return True
    except OSError:
        return False


def start_server(tmp: Path, *, config: Path | None = None, rtp_span: int = 400,
                 env: dict[str, str] | None = None,
                 users: dict[str, tuple[str, str]] | None = None,
                 args: list[str] | None = None) -> RunningServer:
    sip_port, http_port = free_port(), free_port(socket.SOCK_STREAM)
    base = 20000 + (os.getpid() * 7 + sip_port) % 30000 // 2 * 2
    rtp = (base, base + rtp_span)
    data_dir = tmp / "var"
    if users:
        write_users(data_dir, users)
    log_path = tmp / "server.log"
    earlier = _ADMIN_LINE.search(log_path.read_text(errors="replace")) if log_path.exists() else None
    command = [sys.executable, "-m", "switchboard", "run", "--sip", f"127.0.0.1:{sip_port}",
               "--http", f"127.0.0.1:{http_port}", "--rtp-ports", f"{rtp[0]}-{rtp[1]}",
               "--data-dir", str(data_dir), *(args or [])]
    if config is not None:
        command += ["--config", str(config)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})})
    server = RunningServer(proc, sip_port, http_port, data_dir, log_path, rtp)
    if earlier:
        server.extra["admin_password"] = earlier.group(1)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {server.log()}")
        if options_ok(sip_port) and _http_up(http_port):
            return server
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"server did not answer OPTIONS: {server.log()}")
