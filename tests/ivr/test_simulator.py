"""Offline simulation of flows with a scripted caller and fake clock, and the CLI entry points."""

from __future__ import annotations

import json
import wave
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ivr.commands import HttpRequest, HttpResult
from ivr.simulator import NO_NETWORK, main_flow_test, main_lint, simulate

from .helpers import DEMO, FIXTURES, PROMPTS, demo, flow, load_flow

HAPPY = ["welcome", "get_account", "readback", "main_menu"]
GIVE_UP = ["welcome", "get_account", "goodbye", "bye"]

# (id, caller keys, path, variables, ended)
DEMO_SCRIPTS = [
    ("billing", "1234#1", [*HAPPY, "to_billing"], {"account": "1234", "choice": "1"}, "queue:billing"),
    ("support", "1234#2", [*HAPPY, "to_support"], {"account": "1234", "choice": "2"}, "queue:support"),
    ("wrong-then-good", "12#1234#1", [*HAPPY, "to_billing"], {"account": "1234", "choice": "1"}, "queue:billing"),
    ("inter-digit-timeout-accepts", "12345T2", [*HAPPY, "to_support"], {"account": "12345", "choice": "2"},
     "queue:support"),
    ("too-short-by-timeout", "12T5678#1", [*HAPPY, "to_billing"], {"account": "5678", "choice": "1"},
     "queue:billing"),
    ("max-digits-no-terminator", "1234567890121", [*HAPPY, "to_billing"],
     {"account": "123456789012", "choice": "1"}, "queue:billing"),
    ("three-timeouts", "TTT", GIVE_UP, {}, "hangup:normal"),
    ("no-keys-at-all", "", GIVE_UP, {}, "hangup:normal"),
    ("three-invalid", "1#2#3#", GIVE_UP, {}, "hangup:normal"),
    ("menu-repeat", "1234#91", [*HAPPY, "main_menu", "to_billing"], {"account": "1234", "choice": "1"},
     "queue:billing"),
    ("menu-invalid-then-good", "1234#72", [*HAPPY, "to_support"], {"account": "1234", "choice": "2"},
     "queue:support"),
    ("menu-gives-up", "1234#TTT", [*HAPPY, "goodbye", "bye"], {"account": "1234"}, "hangup:normal"),
]


@pytest.mark.parametrize("keys, path, variables, ended", [c[1:] for c in DEMO_SCRIPTS], ids=[c[0] for c in DEMO_SCRIPTS])
def test_demo_scripts(keys: str, path: list[str], variables: dict[str, str], ended: str) -> None:
    result = simulate(demo(), keys)
    assert (result.path, result.variables, result.ended) == (path, variables, ended)
    assert result.unused_keys == ""


def test_fake_clock_elapsed() -> None:
    # welcome 1s; enter_account 1s + keys 0.3s apart (1,2,3,4,#) = 1.5s; readback 5 prompts = 5s;
    # menu 1s barged at 0.3s; the queue's entry prompts play inside the queue
    result = simulate(demo(), "1234#1")
    assert result.elapsed == pytest.approx(1 + 1.5 + 5 + 0.3)
    timeouts = simulate(demo(), "TTT")
    # welcome 1 + 3 x (prompt 1 + timeout 5) + 2 invalid prompts + goodbye 1
    assert timeouts.elapsed == pytest.approx(1 + 3 * 6 + 2 + 1)


def test_barge_in_keys_arrive_during_prompt() -> None:
    result = simulate(demo(), "1234#1", prompt_duration=lambda name: 10.0)
    digits = [e for e in result.events if e["event"] == "digits"]
    assert digits[0]["t"] == pytest.approx(10 + 1.5)  # pressed into the enter_account prompt
    assert result.ended == "queue:billing"


def test_keys_are_not_lost_during_non_barge_prompt() -> None:
    f = flow("""
        flow: t
        start: c
        nodes:
          c: {type: collect, prompts: [long], variable: v, barge_in: false, max_digits: 3, next: e}
          e: {type: hangup}
    """)
    result = simulate(f, "123", prompt_duration=lambda name: 4.0)
    assert result.variables == {"v": "123"}
    assert result.elapsed == pytest.approx(4 + 0.9)


def test_left_over_keys_go_to_next_collect_and_are_reported() -> None:
    result = simulate(demo(), "1234#1999")
    assert result.ended == "queue:billing"
    assert result.unused_keys == "999"


def test_events_have_times_and_mask_sensitive() -> None:
    f = flow("""
        flow: t
        start: c
        nodes:
          c: {type: collect, variable: pin, sensitive: true, max_digits: 4, next: e}
          e: {type: hangup}
    """)
    result = simulate(f, "4321")
    assert result.variables == {"pin": "4321"}
    data = result.to_json()
    assert data["variables"] == {"pin": "****"}
    assert "4321" not in json.dumps(data)
    assert all("t" in e and "event" in e for e in data["events"])


def test_http_without_callback_fails_over() -> None:
    f = load_flow(FIXTURES / "everything.yaml")
    monday_10_paris = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    result = simulate(f, "12340", start=monday_10_paris, variables={"caller_id": "555", "dnis": "100"})
    assert result.path[:3] == ["open_check", "lookup", "ask_pin"]
    assert any(e["event"] == "http" and e["error"] == NO_NETWORK for e in result.events)
    assert result.ended == "hangup:done"


def test_http_callback_and_vip_route() -> None:
    f = load_flow(FIXTURES / "everything.yaml")
    seen: list[HttpRequest] = []

    def crm(request: HttpRequest) -> HttpResult:
        seen.append(request)
        return HttpResult(200, json.dumps({"customer": {"vip": True, "name": "Ann"}}).encode())

    result = simulate(f, "", start=datetime(2026, 1, 5, 9, 0, tzinfo=UTC), http=crm, variables={"caller_id": "+1 555"})
    assert seen[0].url == "https://crm.example/api/callers?ani=%2B1%20555"
    assert result.path == ["open_check", "lookup", "route", "vip_queue"]
    assert result.variables["vip"] == "true" and result.ended == "queue:vip"


def test_closed_hours_and_cross_flow_goto() -> None:
    f = load_flow(FIXTURES / "everything.yaml")
    sunday = datetime(2026, 1, 4, 12, 0, tzinfo=UTC)
    assert simulate(f, "", start=sunday).path == ["open_check", "closed_msg", "bye"]
    flows = {"other": load_flow(FIXTURES / "other.yaml"), "everything": f}
    result = simulate(f, "43212", start=datetime(2026, 1, 5, 9, 0, tzinfo=UTC), flows=flows.__getitem__)
    assert result.path[-4:] == ["elsewhere", "other:hello", "other:back", "bye"]
    assert result.ended == "hangup:done"


def test_hours_use_fake_clock_progress() -> None:
    f = flow("""
        flow: t
        start: p
        nodes:
          p: {type: play, prompts: [long], next: h}
          h: {type: hours, timezone: UTC, schedule: {"mon-sun": "00:00-00:01"}, open: o, closed: c}
          o: {type: hangup, reason: open}
          c: {type: hangup, reason: closed}
    """)
    start = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
    assert simulate(f, "", start=start, prompt_duration=lambda n: 30).ended == "hangup:open"
    assert simulate(f, "", start=start, prompt_duration=lambda n: 61).ended == "hangup:closed"


def test_max_steps_guard() -> None:
    f = flow("""
        flow: t
        start: m
        nodes:
          m: {type: menu, options: {"1": p}, attempts: 1, on_failure: p}
          p: {type: play, prompts: [x], next: m}
    """)
    result = simulate(f, "", max_steps=50)
    assert result.ended == "error:max_steps"


def test_bad_script_key() -> None:
    with pytest.raises(ValueError):
        simulate(demo(), "12x")


# -- command line ------------------------------------------------------------------


def test_flow_test_human(capsys: pytest.CaptureFixture[str]) -> None:
    assert main_flow_test([str(DEMO), "--digits", "1234#1"]) == 0
    out = capsys.readouterr().out
    assert "path: welcome -> get_account -> readback -> main_menu -> to_billing" in out
    assert "  account = 1234" in out and "  choice = 1" in out
    assert "ended: queue:billing" in out


def test_flow_test_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main_flow_test([str(DEMO), "--digits", "TTT", "--json", "--var", "caller_id=555"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["path"] == GIVE_UP and data["ended"] == "hangup:normal"
    assert data["variables"] == {"caller_id": "555"}


def test_flow_test_uses_wav_lengths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with wave.open(str(tmp_path / "welcome.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 8000 * 3)  # 3 s
    assert main_flow_test([str(DEMO), "--digits", "TTT", "--json", "--prompts", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["elapsed"] == pytest.approx(3 + 3 * 6 + 2 + 1)


def test_flow_test_at(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(FIXTURES / "everything.yaml")
    assert main_flow_test([path, "--at", "2026-01-04T12:00:00+01:00", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["path"] == ["open_check", "closed_msg", "bye"]


def test_flow_test_load_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("flow: t\nstart: a\nnodes:\n  a: {type: nope}\n")
    assert main_flow_test([str(bad), "--digits", "1"]) == 1
    assert f"{bad}:4:13: node 'a': unknown node type 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--digits", "1"], [str(DEMO), "--digits", "1x"], [str(DEMO), "--at", "noon"],
                                  [str(DEMO), "--var", "novalue"]])
def test_flow_test_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main_flow_test(argv) == 2


def test_lint_clean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main_lint([str(DEMO.parent), str(FIXTURES), "--prompts", str(PROMPTS)]) == 0
    assert capsys.readouterr().out == "3 flows OK\n"


def test_lint_defaults_from_cwd(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(DEMO.parents[2])
    assert main_lint([]) == 0
    assert capsys.readouterr().out == "1 flow OK\n"


def test_lint_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f.yaml").write_text(
        "flow: f\nstart: a\nnodes:\n  a: {type: play, prompts: [nope], next: b}\n  z: {type: hangup}\n"
    )
    (tmp_path / "prompts").mkdir()
    assert main_lint([str(tmp_path / "f.yaml"), "--prompts", str(tmp_path / "prompts")]) == 1
    out = capsys.readouterr().out.splitlines()
    f = tmp_path / "f.yaml"
    assert out == [
        f"{f}:4:29: node 'a': missing prompt file 'nope.wav'",
        f"{f}:4:42: node 'a': next -> unknown node 'b'",
        f"{f}:5:3: node 'z' is unreachable from start 'a'",
    ]


def test_lint_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main_lint([str(tmp_path / "nope")]) == 1
    assert "no such file or directory" in capsys.readouterr().out
