"""webauth: password hashes, the users file, throttling, sessions and the default-deny rule."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from switchboard import webauth
from switchboard.api import json_errors
from switchboard.openapi import doc, document
from switchboard.webauth import (
    AUTH_KEY,
    AuthState,
    Principal,
    Throttle,
    UserError,
    add_user,
    hash_password,
    load_users,
    public,
    requires,
    verify_password,
)

REPO = Path(__file__).resolve().parents[1]


def test_hash_round_trip_and_salt() -> None:
    one, two = hash_password("correct horse", n=2**10), hash_password("correct horse", n=2**10)
    assert one != two and one.startswith("scrypt$1024$8$1$")
    assert verify_password("correct horse", one) and not verify_password("wrong horse", one)
    for bad in ("", "md5$x", "scrypt$a$b$c$d$e", "scrypt$1024$8$1$!!$!!"):
        assert not verify_password("x", bad)


def test_users_file_round_trip_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    add_user(path, "alice", "supervisor", "long enough pw")
    add_user(path, "bob", "admin", "another long pw")
    users = load_users(path)
    assert {u.name: u.role for u in users.values()} == {"alice": "supervisor", "bob": "admin"}
    assert "long enough" not in path.read_text()
    assert path.stat().st_mode & 0o077 == 0
    with pytest.raises(UserError, match="exists"):
        add_user(path, "alice", "admin", "long enough pw", replace=False)
    for name, role, pw, message in (("a b", "admin", "long enough pw", "name"),
                                    ("carol", "agent", "long enough pw", "role"),
                                    ("carol", "admin", "short", "10 or more")):
        with pytest.raises(UserError, match=message):
            add_user(path, name, role, pw)
    path.write_text("users:\n  - {name: eve, role: admin, password: plain-text}\n")
    with pytest.raises(UserError, match="scrypt hash"):
        load_users(path)


def test_throttle_locks_after_the_limit_and_unlocks() -> None:
    t = Throttle(3, window=60, lock=100)
    assert not t.fail("k", 0) and not t.fail("k", 1)
    assert t.fail("k", 2)
    assert t.locked_for("k", 50) == 52
    assert t.locked_for("k", 103) == 0
    assert not t.fail("k", 200) and not t.fail("k", 300)  # spread out: no lock
    t.succeed("k")
    assert "k" not in t.fails


def _state(tmp_path: Path, agents: dict[str, str] | None = None) -> AuthState:
    agents = agents or {"1001": "demo-1001"}

    def check(name: str, password: str) -> bool | None:
        return None if name not in agents else agents[name] == password

    return AuthState(tmp_path / "users.yaml", tmp_path, check)


def test_initial_admin_is_logged_once_and_retired_by_a_user(tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "switchboard.webauth")
    state = _state(tmp_path)
    state.start()
    (line,) = [r.getMessage() for r in caplog.records if "initial_admin_password" in r.getMessage()]
    password = line.split("password=")[1].split()[0]
    stored = json.loads((tmp_path / "initial_admin.json").read_text())
    assert password not in json.dumps(stored) and stored["password"].startswith("scrypt$")
    who = asyncio.run(state.login("admin", password, "127.0.0.1"))
    assert who == Principal("admin", "admin")
    token = state.open_session(who)
    caplog.clear()
    again = _state(tmp_path)
    again.start()  # second start: the same account, the password is not logged again
    assert "initial_admin_active" in caplog.text and password not in caplog.text
    add_user(tmp_path / "users.yaml", "alice", "supervisor", "long enough pw")
    assert state.resolve(token) is None  # retired: the users file has a user now
    with pytest.raises(web.HTTPUnauthorized):
        asyncio.run(state.login("admin", password, "127.0.0.1"))


def test_login_failures_log_and_lock(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "switchboard.webauth")
    state = _state(tmp_path)

    async def attempts() -> list[int]:
        codes = []
        for _ in range(webauth.USER_FAILS + 1):
            try:
                await state.login("1001", "nope\nevent=forged", "10.0.0.9")
                codes.append(200)
            except web.HTTPException as exc:
                codes.append(exc.status)
        try:  # the right password is refused too while locked
            await state.login("1001", "demo-1001", "10.0.0.9")
        except web.HTTPException as exc:
            codes.append(exc.status)
        return codes

    codes = asyncio.run(attempts())
    assert codes == [401] * webauth.USER_FAILS + [429, 429]
    failed = [r.getMessage() for r in caplog.records if "event=auth_failed" in r.getMessage()]
    assert failed[0] == "event=auth_failed service=http reason=bad_credentials user=1001 ip=10.0.0.9"
    assert "event=auth_lockout" in caplog.text and "event=auth_locked" in caplog.text
    assert "nope" not in caplog.text  # never the password


def _app(tmp_path: Path) -> web.Application:
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    @public
    @doc("open")
    async def open_route(request: web.Request) -> web.Response:
        return await ok(request)

    @requires("supervisor")
    @doc("read", params={"q": "a filter"}, response={"type": "object"})
    async def sup_route(request: web.Request) -> web.Response:
        return await ok(request)

    @requires("agent")
    @doc("write", body={"type": "object"}, status=201)
    async def agent_post(request: web.Request) -> web.Response:
        return web.json_response({"who": webauth.principal(request).name}, status=201)

    app = web.Application(middlewares=[json_errors, webauth.auth_middleware])
    app[AUTH_KEY] = _state(tmp_path)
    webauth.add_routes(app)
    app.router.add_get("/api/open", open_route)
    app.router.add_get("/api/forgotten", ok)  # no decorator: must be denied
    app.router.add_get("/api/sup/{id}", sup_route)
    app.router.add_post("/api/agent", agent_post)
    app.router.add_get("/page", ok)  # not under /api or /ws: not checked

    @requires("agent")
    async def desk(request: web.Request) -> web.Response:
        return await ok(request)

    app.router.add_get("/ws/agents/{agent}", desk)
    return app


async def _client(tmp_path: Path) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = TestClient(TestServer(_app(tmp_path)))
    await client.start_server()
    return client


def test_middleware_default_deny_roles_and_cookies(tmp_path: Path) -> None:
    async def scenario() -> None:
        client = await _client(tmp_path)
        try:
            assert (await client.get("/api/open")).status == 200
            assert (await client.get("/page")).status == 200
            denied = await client.get("/api/forgotten")
            assert denied.status == 403 and "no access rule" in (await denied.json())["error"]
            assert (await client.get("/api/sup/1")).status == 401
            assert (await client.get("/api/nothing")).status == 404
            bad = await client.post("/api/login", data=b"{")
            assert bad.status == 400
            login = await client.post("/api/login", json={"user": "1001", "password": "demo-1001"})
            assert login.status == 200
            cookie = login.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
            token = (await login.json())["token"]
            # the cookie jar now holds the session
            assert (await client.post("/api/agent", json={})).status == 201
            forbidden = await client.get("/api/sup/1")
            assert forbidden.status == 403 and "supervisor" in (await forbidden.json())["error"]
            cross = await client.post("/api/agent", json={}, headers={"Origin": "http://evil.example"})
            assert cross.status == 403
            cross_ws = await client.get("/ws/agents/1001", headers={"Origin": "http://evil.example"})
            assert cross_ws.status == 403
            client.session.cookie_jar.clear()
            bearer = {"Authorization": f"Bearer {token}"}
            assert (await client.get("/api/me", headers=bearer)).status == 200
            assert (await client.post("/api/logout", headers=bearer)).status == 200
            assert (await client.get("/api/me", headers=bearer)).status == 401
        finally:
            await client.close()

    asyncio.run(scenario())


def test_openapi_document_from_routes_is_valid(tmp_path: Path) -> None:
    from openapi_spec_validator import validate

    spec = document(_app(tmp_path))
    validate(spec)
    assert spec["paths"]["/api/sup/{id}"]["get"]["x-switchboard-role"] == "supervisor"
    assert spec["paths"]["/api/forgotten"]["get"]["x-switchboard-role"] == "denied"
    assert spec["paths"]["/api/open"]["get"]["security"] == []
    responses = spec["paths"]["/api/agent"]["post"]["responses"]
    assert {"201", "400", "401", "403"} <= set(responses)


def test_cli_user_add_writes_a_hash(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    cmd = [sys.executable, "-m", "switchboard", "user", "add", "alice", "--role", "supervisor",
           "--file", str(path), "--password-stdin"]
    done = subprocess.run(cmd, input="a long password\n", capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "a long password" not in done.stdout + path.read_text()
    (user,) = load_users(path).values()
    assert user.role == "supervisor" and verify_password("a long password", user.password_hash)
    short = subprocess.run(cmd, input="short\n", capture_output=True, text=True, cwd=REPO,
                           timeout=60)
    assert short.returncode == 1 and "10 or more" in short.stderr
