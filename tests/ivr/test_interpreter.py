"""FlowRun with scripted driver results."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from ivr.commands import (
    DigitSpec,
    DigitsResult,
    EnterQueue,
    GetDigits,
    GetTime,
    Hangup,
    HttpRequest,
    HttpResult,
    Play,
    PlayResult,
    QueueResult,
)
from ivr.diagnostics import UsageError
from ivr.interpreter import FlowRun

from .helpers import demo, drive, flow, names

OK = PlayResult()


def digits(d: str, reason: str = "terminator") -> DigitsResult:
    return DigitsResult(d, "#" if reason == "terminator" else None, reason)


TIMEOUT = DigitsResult("", None, "timeout")
ACCOUNT_SPEC = DigitSpec(4, 12, "#", 5.0, 3.0)
MENU_SPEC = DigitSpec(1, 1, "", 5.0, 5.0)

# (id, driver results, expected path, expected variables, last command)
DEMO_CASES = [
    ("billing", [OK, digits("1234"), OK, digits("1", "max")],
     ["welcome", "get_account", "readback", "main_menu", "to_billing"], {"account": "1234", "choice": "1"},
     EnterQueue("billing", 0, (("billing", 1),), (("account", "1234"),), None, "music_on_hold",
                ("thank_you", "please_hold"))),
    ("support", [OK, digits("98765"), OK, digits("2", "max")],
     ["welcome", "get_account", "readback", "main_menu", "to_support"], {"account": "98765", "choice": "2"},
     EnterQueue("support", 0, (), (("account", "98765"),), None, "music_on_hold",
                ("thank_you", "please_hold"))),
    ("short-then-good", [OK, digits("12"), OK, digits("4321"), OK, digits("1", "max")],
     ["welcome", "get_account", "readback", "main_menu", "to_billing"], {"account": "4321", "choice": "1"}, None),
    ("inter-digit-timeout-with-enough-digits", [OK, digits("55555", "timeout"), OK, digits("2", "max")],
     ["welcome", "get_account", "readback", "main_menu", "to_support"], {"account": "55555", "choice": "2"}, None),
    ("three-timeouts", [OK, TIMEOUT, OK, TIMEOUT, OK, TIMEOUT, OK],
     ["welcome", "get_account", "goodbye", "bye"], {}, Hangup("normal")),
    ("menu-repeat-then-invalid-then-billing",
     [OK, digits("1234"), OK, digits("9", "max"), digits("7", "max"), OK, digits("1", "max")],
     ["welcome", "get_account", "readback", "main_menu", "main_menu", "to_billing"],
     {"account": "1234", "choice": "1"}, None),
    ("menu-failure", [OK, digits("1234"), OK, TIMEOUT, OK, digits("5", "max"), OK, TIMEOUT, OK],
     ["welcome", "get_account", "readback", "main_menu", "goodbye", "bye"], {"account": "1234"}, Hangup("normal")),
]


@pytest.mark.parametrize("results, path, variables, last", [c[1:] for c in DEMO_CASES], ids=[c[0] for c in DEMO_CASES])
def test_demo_flow(results: list[object], path: list[str], variables: dict[str, str], last: object) -> None:
    run = FlowRun(demo())
    commands = drive(run, results)
    assert run.path == path
    assert run.variables == variables
    if last is not None:
        assert commands[-1] == last


def test_demo_commands_in_order() -> None:
    run = FlowRun(demo())
    commands = drive(run, [OK, digits("12"), OK, digits("1234"), OK, digits("1", "max")])
    assert commands == [
        Play(("welcome",), False),
        GetDigits(("enter_account",), ACCOUNT_SPEC, True),
        Play(("invalid",), True),
        GetDigits(("enter_account",), ACCOUNT_SPEC, True),
        Play(("you_entered", "digits/1", "digits/2", "digits/3", "digits/4"), False),
        GetDigits(("menu",), MENU_SPEC, True),
        EnterQueue("billing", 0, (("billing", 1),), (("account", "1234"),), None, "music_on_hold",
                   ("thank_you", "please_hold")),
    ]
    assert not run.done


def test_no_retry_prompt_after_last_attempt() -> None:
    run = FlowRun(demo())
    commands = drive(run, [OK, TIMEOUT, OK, TIMEOUT, OK, TIMEOUT])
    assert commands[-1] == Play(("goodbye",), False)
    assert names(run.events).count("timeout") == 3
    assert ("failure", {"node": "get_account", "attempts": 3}) in run.events


COLLECT = """
flow: t
start: c
nodes:
  c:
    type: collect
    prompts: [ask]
    retry_prompts: [ask_again]
    variable: pin
    min_digits: 4
    max_digits: 6
    attempts: 2
    validate: {regex: "[0-9]*7"}
    invalid_prompts: [bad]
    sensitive: true
    next: done
  done: {type: hangup}
"""


def test_collect_regex_retry_prompts_and_no_on_failure() -> None:
    run = FlowRun(flow(COLLECT))
    commands = drive(run, [digits("1234"), OK, digits("1111")])
    assert commands[1] == Play(("bad",), True)
    assert commands[2].prompts == ("ask_again",)  # type: ignore[union-attr]
    assert commands[-1] == Hangup("ivr_failure")
    assert [e[1]["why"] for e in run.events if e[0] == "invalid"] == ["no_match", "no_match"]
    assert run.done


def test_sensitive_values_are_masked_in_events() -> None:
    run = FlowRun(flow(COLLECT))
    drive(run, [digits("12345"), OK, digits("4567")])
    assert run.variables["pin"] == "4567"
    assert run.masked_variables() == {"pin": "****"}
    assert run.sensitive == {"pin"}
    logged = json.dumps(run.events)
    assert "4567" not in logged and "12345" not in logged


def test_menu_unknown_option_and_variable() -> None:
    f = flow("""
        flow: t
        start: m
        nodes:
          m: {type: menu, options: {"1": a, "#": b}, attempts: 2, on_failure: b}
          a: {type: hangup, reason: a}
          b: {type: hangup, reason: b}
    """)
    run = FlowRun(f)
    assert drive(run, [digits("5", "max"), digits("#", "max")])[-1] == Hangup("b")
    assert "choice" not in run.variables  # no variable configured
    assert names(run.events).count("invalid") == 1


def test_barge_in_digit_becomes_typeahead() -> None:
    f = flow("""
        flow: t
        start: p
        nodes:
          p: {type: play, prompts: [intro], barge_in: true, next: m}
          m: {type: menu, options: {"3": x}}
          x: {type: hangup}
    """)
    run = FlowRun(f)
    commands = drive(run, [PlayResult("3")])
    assert commands[-1] == GetDigits((), MENU_SPEC, True, "3")
    assert ("barge_in", {"node": "p"}) in run.events
    assert run.send(digits("3", "max")) == Hangup("normal")


def test_set_branch_and_templates() -> None:
    f = flow("""
        flow: t
        start: s
        nodes:
          s: {type: set, vars: {n: "{{ account | length }}", greeting: "hi {{ name }}!", missing: "{{ nope.deeper }}"}, next: b}
          b:
            type: branch
            conditions:
              - {if: "n | int > 5", next: long}
              - {if: "account.startswith('9')", next: nine}
            default: other
          long: {type: hangup, reason: long}
          nine: {type: hangup, reason: nine}
          other: {type: hangup, reason: other}
    """)
    for account, reason in [("123456", "long"), ("912", "nine"), ("12", "other"), ("", "other")]:
        run = FlowRun(f, {"account": account})
        assert run.start() == Hangup(reason)
        assert run.variables["missing"] == ""
    run = FlowRun(f, {"name": "Ann", "account": "1"})
    run.start()
    assert run.variables["greeting"] == "hi Ann!"


SANDBOX_ESCAPES = [
    "().__class__.__base__.__subclasses__()",
    "''.__class__.__mro__[1].__subclasses__()",
    "cycler.__init__.__globals__",
    "self.__init__.__globals__['os']",
    "lipsum.__globals__['os'].system('true')",
    "config.items()",
    "range(10**9) | list | length > 0",
    "'x' * 10**9",
    "account.__class__.__name__ == 'str'",
]


@pytest.mark.parametrize("expr", SANDBOX_ESCAPES)
def test_sandbox_refuses_attribute_tricks(expr: str) -> None:
    f = flow(f"""
        flow: t
        start: b
        nodes:
          b: {{type: branch, conditions: [{{if: "{expr}", next: yes}}], default: no}}
          yes: {{type: hangup, reason: escaped}}
          no: {{type: hangup, reason: safe}}
    """)
    run = FlowRun(f, {"account": "1"})
    assert run.start() == Hangup("safe")


def test_template_runtime_error_is_logged_and_empty() -> None:
    f = flow("""
        flow: t
        start: s
        nodes:
          s: {type: set, vars: {x: "{{ 1 / (a | int) }}", y: "{{ ''.__class__.__mro__[1].__subclasses__() }}"}, next: e}
          e: {type: hangup}
    """)
    run = FlowRun(f, {"a": "0"})
    run.start()
    assert run.variables["x"] == "" and run.variables["y"] == ""
    assert names(run.events).count("template_error") == 2


HTTP = """
flow: t
start: h
nodes:
  h:
    type: http
    method: POST
    url: "https://crm.example/c/{{ account }}"
    headers: {Authorization: "Bearer {{ token }}"}
    json: {account: "{{ account }}", n: 2, tags: ["{{ token }}"]}
    timeout: 1.5
    set: {tier: json.customer.tier, first: json.items.0, code: status, missing: json.nope}
    next: ok
    on_failure: failed
  ok: {type: hangup, reason: ok}
  failed: {type: hangup, reason: failed}
"""


def test_http_request_and_success() -> None:
    run = FlowRun(flow(HTTP), {"account": "42", "token": "t0k"})
    request = run.start()
    assert request == HttpRequest(
        "POST",
        "https://crm.example/c/42",
        (("Authorization", "Bearer t0k"), ("Content-Type", "application/json")),
        json.dumps({"account": "42", "n": 2, "tags": ["t0k"]}).encode(),
        1.5,
    )
    body = json.dumps({"customer": {"tier": "gold"}, "items": [7, 8]}).encode()
    assert run.send(HttpResult(200, body)) == Hangup("ok")
    assert run.variables | {"account": "", "token": ""} == {
        "account": "", "token": "", "tier": "gold", "first": "7", "code": "200", "missing": "",
    }
    assert ("http_missing", {"node": "h", "variable": "missing", "path": "json.nope"}) in run.events


@pytest.mark.parametrize(
    "result, why",
    [
        (HttpResult(None, b"", "timeout"), "error: timeout"),
        (HttpResult(None, b"", "connection refused"), "error: connection refused"),
        (HttpResult(503, b"busy"), "status 503"),
        (HttpResult(200, b"<html>"), "response is not JSON"),
    ],
)
def test_http_failures(result: HttpResult, why: str) -> None:
    run = FlowRun(flow(HTTP), {"account": "42"})
    run.start()
    assert run.send(result) == Hangup("failed")
    assert ("http_failed", {"node": "h", "why": why}) in run.events


def test_http_failure_without_on_failure_hangs_up() -> None:
    f = flow("""
        flow: t
        start: h
        nodes:
          h: {type: http, url: "http://x", next: e}
          e: {type: hangup}
    """)
    run = FlowRun(f)
    assert run.start().body is None  # type: ignore[union-attr]
    assert run.send(HttpResult(None, b"", "timeout")) == Hangup("ivr_failure")


def test_http_url_redacts_sensitive_values() -> None:
    f = flow("""
        flow: t
        start: c
        nodes:
          c: {type: collect, variable: pin, sensitive: true, next: h}
          h: {type: http, url: "http://x/check?pin={{ pin }}", next: e}
          e: {type: hangup}
    """)
    run = FlowRun(f)
    drive(run, [digits("9876"), HttpResult(204)])
    assert "9876" not in json.dumps(run.events)


def test_hours_node_asks_for_time() -> None:
    f = flow("""
        flow: t
        start: h
        nodes:
          h: {type: hours, timezone: UTC, schedule: {"mon-fri": "09:00-17:00"}, open: o, closed: c}
          o: {type: hangup, reason: open}
          c: {type: hangup, reason: closed}
    """)
    run = FlowRun(f)
    assert run.start() == GetTime()
    assert run.send(datetime(2026, 3, 4, 10, 0, tzinfo=UTC)) == Hangup("open")
    run = FlowRun(f)
    run.start()
    with pytest.raises(UsageError):
        run.send(datetime(2026, 3, 4, 10, 0))  # naive


def test_queue_returns_to_next_or_hangs_up() -> None:
    f = flow("""
        flow: t
        start: q
        nodes:
          q: {type: queue, queue: sales, priority: 2, timeout: 30, next: q2}
          q2: {type: queue, queue: overflow}
    """)
    run = FlowRun(f)
    assert run.start() == EnterQueue("sales", 2, (), (), 30.0)
    assert run.send(QueueResult("timeout")) == EnterQueue("overflow", 0, (), (), None)
    assert run.variables["queue_outcome"] == "timeout"
    assert run.send(QueueResult("abandoned")) == Hangup("queue_abandoned")


def test_goto_other_flow_and_path_prefix() -> None:
    main = flow("""
        flow: main
        start: g
        nodes:
          g: {type: goto, flow: sub}
    """)
    sub = flow("""
        flow: sub
        start: s
        nodes:
          s: {type: play, prompts: [x], next: back}
          back: {type: goto, flow: main, node: end}
          end: {type: hangup}
    """)
    flows = {"main": flow("""
        flow: main
        start: g
        nodes:
          g: {type: hangup}
          end: {type: hangup, reason: back_home}
    """), "sub": sub}
    run = FlowRun(main, flows=flows.__getitem__)
    assert drive(run, [OK]) == [Play(("x",), False), Hangup("back_home")]
    assert run.path == ["g", "sub:s", "sub:back", "end"]  # back home: plain ids


def test_goto_unknown_flow() -> None:
    f = flow("""
        flow: t
        start: g
        nodes:
          g: {type: goto, flow: nowhere}
    """)
    assert FlowRun(f).start() == Hangup("ivr_error")
    assert FlowRun(f, flows={}.__getitem__).start() == Hangup("ivr_error")


def test_unknown_node_at_runtime_is_an_error_hangup() -> None:
    f = flow("""
        flow: t
        start: a
        nodes:
          a: {type: goto, node: b}
    """)
    run = FlowRun(f)
    assert run.start() == Hangup("ivr_error")
    assert run.path == ["a"]


def test_automatic_loop_guard() -> None:
    f = flow("""
        flow: t
        start: a
        nodes:
          a: {type: set, vars: {x: "1"}, next: b}
          b: {type: goto, node: a}
    """)
    assert FlowRun(f).start() == Hangup("ivr_loop")


def test_say_digits_value_and_symbols() -> None:
    f = flow("""
        flow: t
        start: s
        nodes:
          s: {type: say_digits, value: "{{ n }}", prompts_before: [a], prompts_after: [b], next: e}
          e: {type: hangup}
    """)
    run = FlowRun(f, {"n": "1-2*#x"})
    assert run.start() == Play(("a", "digits/1", "digits/2", "digits/star", "digits/pound", "b"), False)


@pytest.mark.parametrize(
    "bad",
    [DigitsResult("1", None, "max"), PlayResult("xx"), QueueResult("x"), "hello", None],
)
def test_wrong_result_type_is_a_usage_error(bad: object) -> None:
    run = FlowRun(demo())
    run.start()  # Play
    with pytest.raises(UsageError):
        run.send(bad)


def test_usage_errors_around_the_lifecycle() -> None:
    f = flow("flow: t\nstart: e\nnodes:\n  e: {type: hangup, reason: bye}\n")
    run = FlowRun(f)
    with pytest.raises(UsageError):
        run.send(OK)
    assert run.start() == Hangup("bye")
    assert run.done
    with pytest.raises(UsageError):
        run.send(OK)
    with pytest.raises(UsageError):
        run.start()


def test_initial_variables_are_strings_and_copied() -> None:
    given = {"caller_id": "555"}
    run = FlowRun(demo(), given)
    run.variables["x"] = "1"
    assert given == {"caller_id": "555"}


def test_say_digits_of_sensitive_variable_is_masked_in_events() -> None:
    f = flow("""
        flow: t
        start: c
        nodes:
          c: {type: collect, variable: pin, sensitive: true, next: s}
          s: {type: say_digits, variable: pin, next: e}
          e: {type: hangup}
    """)
    run = FlowRun(f)
    commands = drive(run, [digits("2468")])
    assert commands[-1] == Play(("digits/2", "digits/4", "digits/6", "digits/8"), False)  # the caller hears it
    assert "2468" not in json.dumps(run.events)
    assert ("say_digits", {"node": "s", "digits": "****"}) in run.events


@pytest.mark.parametrize(("result", "path_end", "last"), [
    (QueueResult("key", "goodbye"), ["to_billing", "goodbye"], Play(("goodbye",), False)),
    (QueueResult("timeout", "no_such_node"), ["to_billing"], Hangup("queue_timeout")),
    (QueueResult("empty"), ["to_billing"], Hangup("queue_empty")),
])
def test_queue_exit_continues_at_the_target_node(result: QueueResult, path_end: list[str],
                                                  last: object) -> None:
    """An exit key or a node overflow names where the flow goes on; otherwise it ends."""
    run = FlowRun(demo())
    run.start()
    for step in (OK, digits("1234"), OK, digits("1", "max")):
        run.send(step)
    command = run.send(result)
    assert run.path[-len(path_end):] == path_end
    assert command == last
