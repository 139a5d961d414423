"""Authentication and roles for the HTTP API and the WebSockets (default deny).

Roles, each including the ones before it: ``agent`` < ``supervisor`` < ``admin``.

- Agents log in with their SIP credentials: the password is checked by computing the
  digest HA1 = MD5(user:realm:password) with the configured realm and comparing it with
  the stored one (``hmac.compare_digest``); agents.yaml never holds more than that.
- Supervisors and admins come from the users file (``users:`` in the server config,
  default ``DATA_DIR/users.yaml``), written by ``switchboard user add NAME --role ROLE``
  or ``POST /api/users``; each entry stores a salted scrypt hash, never the password::

      users:
        - name: alice
          role: supervisor
          password: scrypt$16384$8$1$<salt, base64>$<hash, base64>

- There is no default password. While the users file has no entry, the first start
  makes a random password for the user ``admin``, stores only its hash in
  ``DATA_DIR/initial_admin.json`` and logs the password once
  (``event=initial_admin_password``). Adding any user retires that account.

A login (``POST /api/login``) returns a bearer token and sets the same token as a
``HttpOnly; SameSite=Strict`` cookie. Requests carry either; WebSockets may also pass
``?token=``. Failed logins are one fail2ban-friendly line each
(``event=auth_failed service=http reason=... user=... ip=...``); repeated failures lock
the user (and a noisy address) out for a while with 429 (``event=auth_locked``).

How a route module uses this (``switchboard/api_recordings.py`` for example)::

    from aiohttp import web
    from .webauth import doc, principal, public, requires

    @requires("supervisor")
    @doc("List recordings", params={"account": "filter by account"},
         response={"type": "object"})
    async def recordings(request: web.Request) -> web.Response:
        who = principal(request)       # the logged-in Principal (name, role, agent)
        ...

    def add_routes(app: web.Application) -> None:   # called by api.build_app
        app.router.add_get("/api/recordings", recordings)

Every handler under ``/api`` or ``/ws`` must carry ``@requires(role)`` or ``@public``:
the middleware answers 403 for a handler with neither, so a forgotten decorator fails
closed. ``@doc`` metadata (with the role) feeds ``/api/openapi.json``. Ownership checks
(an agent reading only its own call) stay in the handler: ``allow_self(request, id)``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from aiohttp import web

from .openapi import ACCESS_ATTR, doc

log = logging.getLogger("switchboard.webauth")

__all__ = ["ROLES", "Principal", "AuthState", "AUTH_KEY", "requires", "public", "doc",
           "principal", "allow_self", "auth_middleware", "hash_password", "verify_password",
           "add_user", "load_users", "UserError"]

ROLES = ("agent", "supervisor", "admin")
USER_ROLES = ("supervisor", "admin")
RANK = {role: i for i, role in enumerate(ROLES)}
COOKIE = "sb_session"
SESSION_IDLE = 8 * 3600.0
SESSION_MAX_AGE = 24 * 3600.0
MAX_SESSIONS = 10_000
FAIL_WINDOW = 600.0
USER_FAILS = 5  # per user within FAIL_WINDOW, then locked for LOCK_SECONDS
ADDR_FAILS = 20  # per address within FAIL_WINDOW
LOCK_SECONDS = 300.0
MAX_THROTTLE_KEYS = 10_000
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")
INITIAL_ADMIN = "admin"

H = TypeVar("H", bound=Callable[..., Awaitable[web.StreamResponse]])


# -- decorators ---------------------------------------------------------------------------

def requires(role: str) -> Callable[[H], H]:
    """Only principals with at least this role (agent < supervisor < admin) get in."""
    if role not in RANK:
        raise ValueError(f"unknown role {role!r}")

    def mark(handler: H) -> H:
        setattr(handler, ACCESS_ATTR, role)
        return handler

    return mark


def public(handler: H) -> H:
    """Open to anyone: only for routes that reveal nothing secret (health, login, docs)."""
    setattr(handler, ACCESS_ATTR, "public")
    return handler


def access_of(handler: Any) -> str | None:
    return getattr(handler, ACCESS_ATTR, None)


# -- principals ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    agent: str | None = None  # the agent id when role == "agent"

    def has(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]

    def view(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "agent": self.agent}


def principal(request: web.Request) -> Principal:
    who = request.get(PRINCIPAL_KEY)
    if not isinstance(who, Principal):
        raise web.HTTPUnauthorized(reason="log in first")
    return who


def allow_self(request: web.Request, agent_id: str) -> Principal:
    """Agents may act on themselves only; supervisors and admins on anyone."""
    who = principal(request)
    if who.role == "agent" and who.agent != agent_id:
        raise web.HTTPForbidden(reason=f"agent {who.agent} may not act for agent {agent_id}")
    return who


# -- password hashes ----------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, n: int = SCRYPT_N) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P,
                            maxmem=64 * 1024 * 1024, dklen=32)
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, want = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p),
                             maxmem=64 * 1024 * 1024, dklen=len(_unb64(want)))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, _unb64(want))


_DUMMY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


# -- the users file -----------------------------------------------------------------------

class UserError(ValueError):
    """A users file or a user entry that cannot be used."""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str


def load_users(path: Path) -> dict[str, User]:
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from None
    entries = data.get("users") if isinstance(data, dict) else None
    if entries is None:
        return {}
    if not isinstance(entries, list):
        raise UserError(f"{path}: 'users' must be a list")
    users: dict[str, User] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise UserError(f"{path}: users[{i}] must be a mapping")
        name, role, pw = entry.get("name"), entry.get("role"), entry.get("password")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise UserError(f"{path}: users[{i}]: 'name' must be 1-64 of A-Z a-z 0-9 . _ @ -")
        if role not in USER_ROLES:
            raise UserError(f"{path}: users[{i}] ({name}): 'role' must be supervisor or admin")
        if not isinstance(pw, str) or not pw.startswith("scrypt$"):
            raise UserError(f"{path}: users[{i}] ({name}): 'password' must be a scrypt hash "
                            "(write it with 'switchboard user add')")
        users[name] = User(name, role, pw)
    return users


def save_users(path: Path, users: dict[str, User]) -> None:
    """Write atomically, readable by the owner only."""
    body = {"users": [{"name": u.name, "role": u.role, "password": u.password_hash}
                      for u in users.values()]}
    text = ("# Supervisors and admins of the Switchboard API and wallboard.\n"
            "# Written by 'switchboard user add'; passwords are scrypt hashes.\n"
            + yaml.safe_dump(body, sort_keys=False))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def add_user(path: Path, name: str, role: str, password: str, *, replace: bool = True) -> User:
    if not _NAME.fullmatch(name):
        raise UserError("a user name is 1-64 of A-Z a-z 0-9 . _ @ -")
    if role not in USER_ROLES:
        raise UserError("role must be supervisor or admin")
    if len(password) < 10:
        raise UserError("the password needs 10 or more characters")
    users = load_users(path)
    if name in users and not replace:
        raise UserError(f"user {name} exists")
    users[name] = User(name, role, hash_password(password))
    save_users(path, users)
    return users[name]


def remove_user(path: Path, name: str) -> bool:
    users = load_users(path)
    if users.pop(name, None) is None:
        return False
    save_users(path, users)
    return True


# -- sessions and login throttling ----------------------------------------------------------

@dataclass
class Session:
    who: Principal
    created: float
    seen: float


class Throttle:
    """Failed logins per key in a sliding window; a key over its limit is locked."""

    def __init__(self, limit: int, window: float = FAIL_WINDOW, lock: float = LOCK_SECONDS) -> None:
        self.limit, self.window, self.lock = limit, window, lock
        self.fails: dict[str, deque[float]] = {}
        self.locked: dict[str, float] = {}

    def locked_for(self, key: str, now: float) -> float:
        until = self.locked.get(key)
        if until is None:
            return 0.0
        if until <= now:
            del self.locked[key]
            return 0.0
        return until - now

    def fail(self, key: str, now: float) -> bool:
        """Count a failure; True when the key just got locked."""
        if len(self.fails) >= MAX_THROTTLE_KEYS and key not in self.fails:
            self._reap(now)
        window = self.fails.setdefault(key, deque(maxlen=self.limit))
        window.append(now)
        if len(window) >= self.limit and now - window[0] <= self.window:
            self.locked[key] = now + self.lock
            window.clear()
            return True
        return False

    def succeed(self, key: str) -> None:
        self.fails.pop(key, None)

    def _reap(self, now: float) -> None:
        for key in [k for k, w in self.fails.items() if not w or now - w[-1] > self.window]:
            del self.fails[key]
        for key in [k for k, until in self.locked.items() if until <= now]:
            del self.locked[key]
        while len(self.fails) >= MAX_THROTTLE_KEYS:  # still full: forget the oldest entry
            self.fails.pop(next(iter(self.fails)))


AgentCheck = Callable[[str, str], bool | None]  # (agent id, password) -> ok, None = no such agent


class AuthState:
    """Users, sessions and throttles of one HTTP app (kept in the app under AUTH_KEY)."""

    def __init__(self, users_file: Path, data_dir: Path, check_agent: AgentCheck) -> None:
        self.users_file = users_file
        self.data_dir = data_dir
        self.check_agent = check_agent
        self.sessions: dict[str, Session] = {}  # sha256(token) -> session
        self.by_user = Throttle(USER_FAILS)
        self.by_addr = Throttle(ADDR_FAILS)
        self.counters: dict[str, int] = {"ok": 0, "failed": 0, "locked": 0}
        self._users: dict[str, User] = {}
        self._users_sig: tuple[int, int] | None = None
        self.initial: User | None = None

    # users ----------------------------------------------------------------------------

    def users(self) -> dict[str, User]:
        """The users file, re-read when it changed on disk (the CLI may write it live)."""
        try:
            st = self.users_file.stat()
            sig: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            sig = None
        if sig != self._users_sig:
            try:
                self._users = load_users(self.users_file) if sig else {}
            except UserError as exc:
                log.error("event=users_file_error error=%s", exc)
                self._users = {}
            self._users_sig = sig
        return self._users

    def start(self) -> None:
        """Report the users file; make the one-time admin while it has no user."""
        users = self.users()
        if users:
            log.info("event=users_loaded file=%s users=%d", self.users_file, len(users))
            return
        path = self.data_dir / "initial_admin.json"
        if path.exists():
            try:
                stored = json.loads(path.read_text())
                self.initial = User(INITIAL_ADMIN, "admin", str(stored["password"]))
            except (OSError, ValueError, KeyError, TypeError):
                log.error("event=initial_admin_unreadable file=%s (delete it to get a new one)",
                          path)
                return
            log.warning("event=initial_admin_active user=%s file=%s note=\"the one-time password "
                        "was logged at its first start; delete the file and restart for a new "
                        "one, or add users with 'switchboard user add'\"", INITIAL_ADMIN, path)
            return
        password = secrets.token_urlsafe(15)
        self.initial = User(INITIAL_ADMIN, "admin", hash_password(password))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"name": INITIAL_ADMIN, "role": "admin", "password": self.initial.password_hash},
                      f)
        log.warning("event=initial_admin_password user=%s password=%s file=%s note=\"shown once; "
                    "it works until a user is added with 'switchboard user add NAME --role "
                    "ROLE'\"", INITIAL_ADMIN, password, path)

    def _user(self, name: str) -> User | None:
        users = self.users()
        if users:
            return users.get(name)
        if self.initial is not None and name == self.initial.name:
            return self.initial
        return None

    # login ------------------------------------------------------------------------------

    async def login(self, name: str, password: str, addr: str) -> Principal:
        """The principal for good credentials; 401 (or 429 while locked out) otherwise."""
        now = time.monotonic()
        wait = max(self.by_user.locked_for(f"user:{name}", now), self.by_addr.locked_for(addr, now))
        if wait > 0:
            self.counters["locked"] += 1
            log.warning("event=auth_locked service=http user=%s ip=%s retry_after=%d",
                        _word(name), _word(addr), int(wait) + 1)
            raise web.HTTPTooManyRequests(reason="too many failed logins: try again later",
                                          headers={"Retry-After": str(int(wait) + 1)})
        who = await self._check(name, password)
        if who is None:
            self.counters["failed"] += 1
            log.warning("event=auth_failed service=http reason=bad_credentials user=%s ip=%s",
                        _word(name), _word(addr))
            locked = self.by_user.fail(f"user:{name}", now)
            locked = self.by_addr.fail(addr, now) or locked
            if locked:
                log.warning("event=auth_lockout service=http user=%s ip=%s seconds=%d",
                            _word(name), _word(addr), int(LOCK_SECONDS))
            raise web.HTTPUnauthorized(reason="wrong user name or password")
        self.by_user.succeed(f"user:{name}")
        self.counters["ok"] += 1
        log.info("event=auth_ok service=http user=%s role=%s ip=%s", _word(name), who.role,
                 _word(addr))
        return who

    async def _check(self, name: str, password: str) -> Principal | None:
        user = self._user(name)
        if user is not None:
            ok = await asyncio.to_thread(verify_password, password, user.password_hash)
            return Principal(user.name, user.role) if ok else None
        agent_ok = self.check_agent(name, password)
        if agent_ok is None:  # unknown name: spend the same time as a real check
            await asyncio.to_thread(verify_password, password, _DUMMY_HASH)
            return None
        return Principal(name, "agent", name) if agent_ok else None

    # sessions ---------------------------------------------------------------------------

    def open_session(self, who: Principal) -> str:
        now = time.monotonic()
        if len(self.sessions) >= MAX_SESSIONS:
            self._reap(now)
            while len(self.sessions) >= MAX_SESSIONS:
                self.sessions.pop(next(iter(self.sessions)))
        token = secrets.token_urlsafe(32)
        self.sessions[_digest(token)] = Session(who, now, now)
        return token

    def close_session(self, token: str) -> None:
        self.sessions.pop(_digest(token), None)

    def resolve(self, token: str) -> Principal | None:
        key = _digest(token)
        session = self.sessions.get(key)
        if session is None:
            return None
        now = time.monotonic()
        if now - session.seen > SESSION_IDLE or now - session.created > SESSION_MAX_AGE:
            del self.sessions[key]
            return None
        if session.who.role != "agent":
            user = self._user(session.who.name)
            if user is None or user.role != session.who.role:
                del self.sessions[key]  # removed, retired (the initial admin) or changed
                return None
        session.seen = now
        return session.who

    def drop_user(self, name: str) -> None:
        for key in [k for k, s in self.sessions.items() if s.who.name == name]:
            del self.sessions[key]

    def _reap(self, now: float) -> None:
        for key in [k for k, s in self.sessions.items()
                    if now - s.seen > SESSION_IDLE or now - s.created > SESSION_MAX_AGE]:
            del self.sessions[key]


AUTH_KEY: web.AppKey[AuthState] = web.AppKey("auth", AuthState)
# where the middleware leaves the principal and its token on the request
_RequestKey: Any = getattr(web, "RequestKey", None)  # aiohttp >= 3.12; plain strings before
PRINCIPAL_KEY: Any = _RequestKey("principal", Principal) if _RequestKey else "principal"
TOKEN_KEY: Any = _RequestKey("token", str) if _RequestKey else "token"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _word(text: str) -> str:
    """Peer-supplied text as one log word: it cannot forge fields or lines."""
    cleaned = "".join(c if c.isalnum() or c in "._@:-" else "?" for c in text[:64])
    return cleaned or "-"


def request_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    if request.path.startswith("/ws/") and request.query.get("token"):
        return request.query["token"]
    return request.cookies.get(COOKIE)


def _cross_site(request: web.Request) -> bool:
    """A state-changing request from another origin riding on the cookie (SameSite=Strict
    already stops modern browsers; this covers the rest)."""
    origin = request.headers.get("Origin")
    if not origin:
        return False
    return origin.split("://", 1)[-1] != request.host


@web.middleware
async def auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Default deny: /api and /ws handlers need @public or @requires(role)."""
    if not (request.path.startswith("/api/") or request.path.startswith("/ws/")):
        return await handler(request)
    match = request.match_info
    if match.http_exception is not None:
        return await handler(request)  # 404 / 405 as usual
    access = access_of(match.handler)
    if access is None:
        log.error("event=route_without_access_rule path=%s", request.path)
        raise web.HTTPForbidden(reason="this route has no access rule: denied")
    state = request.app[AUTH_KEY]
    token = request_token(request)
    who = state.resolve(token) if token else None
    if who is not None:
        request[PRINCIPAL_KEY] = who
        request[TOKEN_KEY] = token
    if access == "public":
        return await handler(request)
    if who is None:
        raise web.HTTPUnauthorized(reason="log in first (POST /api/login)")
    if not who.has(access):
        raise web.HTTPForbidden(reason=f"needs the {access} role; you are {who.role}")
    changes = request.method not in ("GET", "HEAD", "OPTIONS")
    if (changes or request.path.startswith("/ws/")) and _cross_site(request):
        raise web.HTTPForbidden(reason="cross-site request refused")  # incl. WebSocket hijacking
    return await handler(request)


# -- the login routes -----------------------------------------------------------------------

LOGIN_BODY = {"type": "object", "required": ["user", "password"],
              "properties": {"user": {"type": "string"}, "password": {"type": "string"}}}
PRINCIPAL = {"type": "object", "properties": {
    "name": {"type": "string"}, "role": {"type": "string", "enum": list(ROLES)},
    "agent": {"type": ["string", "null"]}}}


@public
@doc("Log in (agents: id and SIP password; supervisors and admins: users file)",
     body=LOGIN_BODY, response={"type": "object", "properties": {
         "token": {"type": "string"}, "user": PRINCIPAL}},
     errors=(400, 401, 429))
async def login(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(reason="the body must be a JSON object") from None
    if not isinstance(body, dict) or not isinstance(body.get("user"), str) or \
            not isinstance(body.get("password"), str) or len(body["password"]) > 1024:
        raise web.HTTPBadRequest(reason="give user and password as strings")
    state = request.app[AUTH_KEY]
    who = await state.login(body["user"], body["password"], request.remote or "-")
    token = state.open_session(who)
    resp = web.json_response({"token": token, "user": who.view()})
    resp.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/",
                    max_age=int(SESSION_MAX_AGE))
    return resp


@requires("agent")
@doc("Log out: ends this session", response={"type": "object"})
async def logout(request: web.Request) -> web.Response:
    token = request.get(TOKEN_KEY)
    if token:
        request.app[AUTH_KEY].close_session(token)
    resp = web.json_response({"ok": True})
    resp.del_cookie(COOKIE, path="/")
    return resp


@requires("agent")
@doc("Who is logged in", response=PRINCIPAL)
async def me(request: web.Request) -> web.Response:
    return web.json_response(principal(request).view())


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/login", login)
    app.router.add_post("/api/logout", logout)
    app.router.add_get("/api/me", me)


# -- `switchboard user add NAME --role ROLE` --------------------------------------------------

def main_user(args: Any) -> int:
    """Add (or replace) a supervisor or admin in the users file; prints no secret."""
    import getpass
    import sys

    from .config import DEMO_CONFIG, ConfigError, load_config

    path: Path | None = args.file
    if path is None:
        try:
            cfg = load_config(args.config or DEMO_CONFIG)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
        path = cfg.users_file or cfg.data_dir / "users.yaml"
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            print("switchboard user: the passwords differ", file=sys.stderr)
            return 1
    try:
        add_user(path, args.name, args.role, password)
    except (UserError, OSError) as exc:
        print(f"switchboard user: {exc}", file=sys.stderr)
        return 1
    print(f"user {args.name} ({args.role}) written to {path}")
    return 0
