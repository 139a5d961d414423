"""Runs one call through a flow, sans-IO.

A generator walks the nodes and yields commands (``ivr.commands``); the driver
executes each one and sends back its result. Nothing here touches a clock,
a socket or the audio: time arrives as a ``GetTime`` result.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Generator, Mapping
from datetime import datetime
from typing import Any

from . import hours as hours_mod
from .commands import (
    DTMF_KEYS,
    Command,
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
    RecordControl,
)
from .diagnostics import UsageError
from .model import WAITING_TYPES, Flow, Node
from .templating import evaluate, render

Step = Generator[Command, Any, str | None]

MAX_AUTOMATIC_STEPS = 1000  # nodes in a row without caller input before the call is ended
SAY_DIGIT_PROMPTS = {**{d: f"digits/{d}" for d in "0123456789"}, "*": "digits/star", "#": "digits/pound"}

_EXPECTED: dict[type, type] = {
    Play: PlayResult,
    GetDigits: DigitsResult,
    HttpRequest: HttpResult,
    EnterQueue: QueueResult,
    GetTime: datetime,
    RecordControl: type(None),
}


class FlowRun:
    """Runs one call through a flow. Sans-IO: a generator inside yields commands;
    the driver executes them and sends results."""

    def __init__(
        self,
        flow: Flow,
        variables: Mapping[str, str] | None = None,
        *,
        flows: Callable[[str], Flow] | None = None,
    ) -> None:
        self.flow = flow
        self.variables: dict[str, str] = {str(k): str(v) for k, v in (variables or {}).items()}
        self.sensitive: set[str] = set()
        self.path: list[str] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.done = False
        self._flows = flows
        self._gen = self._run()
        self._pending: Command | None = None
        self._started = False
        self._typeahead = ""

    # -- driver API -------------------------------------------------------------

    def start(self) -> Command:
        """The first command."""
        if self._started:
            raise UsageError("start() called twice")
        self._started = True
        return self._advance(None)

    def send(self, result: object) -> Command:
        """Send the result of the last command; returns the next command."""
        if not self._started:
            raise UsageError("send() before start()")
        if self.done or self._pending is None:
            raise UsageError("the flow run has ended (Hangup was the last command)")
        self._check_result(self._pending, result)
        return self._advance(result)

    def masked_variables(self) -> dict[str, str]:
        return {k: self._mask(k, v) for k, v in self.variables.items()}

    def _advance(self, value: object) -> Command:
        cmd = self._gen.send(value)
        self._pending = cmd
        if isinstance(cmd, Hangup):
            self.done = True
            self._pending = None
        return cmd

    @staticmethod
    def _check_result(cmd: Command, result: object) -> None:
        expected = _EXPECTED[type(cmd)]
        if not isinstance(result, expected):
            raise UsageError(f"{type(cmd).__name__} expects a {expected.__name__}, got {type(result).__name__}")
        if isinstance(result, datetime) and result.tzinfo is None:
            raise UsageError("GetTime expects an aware datetime")
        if isinstance(result, PlayResult) and result.barge_digit is not None:
            if len(result.barge_digit) != 1 or result.barge_digit not in DTMF_KEYS:
                raise UsageError(f"not a DTMF key: {result.barge_digit!r}")
        if isinstance(result, DigitsResult) and result.reason not in ("terminator", "max", "timeout"):
            raise UsageError(f"unknown DigitsResult reason {result.reason!r}")

    # -- logging helpers ------------------------------------------------------------

    def _event(self, name: str, **data: Any) -> None:
        self.events.append((name, data))

    def _mask(self, name: str, value: str) -> str:
        return "*" * len(value) if name in self.sensitive else value

    def _redact(self, text: str) -> str:
        for name in self.sensitive:
            value = self.variables.get(name)
            if value:
                text = text.replace(value, "*" * len(value))
        return text

    def _render(self, node: Node, source: str, where: str) -> str:
        try:
            return render(source, self.variables)
        except Exception as exc:  # any runtime failure of a sandboxed template -> ''
            self._event("template_error", node=node.id, where=where, error=self._redact(str(exc)))
            return ""

    def _test(self, node: Node, source: str, where: str) -> bool:
        try:
            return evaluate(source, self.variables)
        except Exception as exc:
            self._event("template_error", node=node.id, where=where, error=self._redact(str(exc)))
            return False

    def _take_typeahead(self) -> str:
        keys, self._typeahead = self._typeahead, ""
        return keys

    def _play(self, node: Node, prompts: tuple[str, ...], barge_in: bool) -> Generator[Command, Any, None]:
        self._event("play", node=node.id, prompts=list(prompts))
        result = yield Play(prompts, barge_in)
        if result.barge_digit:
            self._event("barge_in", node=node.id)
            self._typeahead += result.barge_digit

    # -- walking the flow ------------------------------------------------------------

    def _run(self) -> Generator[Command, Any, None]:
        flow, node_id, automatic = self.flow, self.flow.start, 0
        while True:
            node = flow.nodes.get(node_id)
            if node is None:
                self._event("error", node=node_id, message=f"unknown node '{node_id}' in flow '{flow.name}'")
                yield Hangup("ivr_error")
                return
            self.path.append(node_id if flow.name == self.flow.name else f"{flow.name}:{node_id}")
            self._event("node", id=node_id, type=node.type, flow=flow.name)
            if node.type == "goto" and node.get("flow"):
                other = self._other_flow(node)
                if other is None:
                    yield Hangup("ivr_error")
                    return
                flow, node_id = other, node.get("node") or other.start
                continue
            next_id = yield from _HANDLERS[node.type](self, node)
            if next_id is None:
                return
            automatic = 0 if node.type in WAITING_TYPES else automatic + 1
            if automatic > MAX_AUTOMATIC_STEPS:
                self._event("error", node=node.id, message="too many steps without caller input")
                yield Hangup("ivr_loop")
                return
            node_id = next_id

    def _other_flow(self, node: Node) -> Flow | None:
        name = node["flow"]
        try:
            if self._flows is None:
                raise KeyError(name)
            other = self._flows(name)
        except KeyError:
            self._event("error", node=node.id, message=f"unknown flow '{name}'")
            return None
        self._event("goto_flow", node=node.id, flow=name)
        return other

    # -- node types ----------------------------------------------------------------

    def _do_play(self, node: Node) -> Step:
        yield from self._play(node, tuple(node["prompts"]), node["barge_in"])
        return str(node["next"])

    def _do_say_digits(self, node: Node) -> Step:
        if node.get("variable"):
            value = self.variables.get(node["variable"], "")
            secret = node["variable"] in self.sensitive
        else:
            value = self._render(node, node["value"], "value")
            secret = self._redact(value) != value
        spoken = "".join(c for c in value if c in SAY_DIGIT_PROMPTS)
        said = [SAY_DIGIT_PROMPTS[c] for c in spoken]
        before, after = tuple(node["prompts_before"]), tuple(node["prompts_after"])
        logged = ["digits/*"] * len(said) if secret else said
        self._event("say_digits", node=node.id, digits="*" * len(spoken) if secret else spoken)
        self._event("play", node=node.id, prompts=[*before, *logged, *after])
        result = yield Play((*before, *said, *after), node["barge_in"])
        if result.barge_digit:
            self._event("barge_in", node=node.id)
            self._typeahead += result.barge_digit
        return str(node["next"])

    def _do_collect(self, node: Node) -> Step:
        if node["sensitive"]:
            self.sensitive.add(node["variable"])
        spec = DigitSpec(
            node["min_digits"],
            node["max_digits"],
            node["terminators"],
            float(node["first_digit_timeout"]),
            float(node["inter_digit_timeout"]),
        )
        return (yield from self._attempts(node, spec, self._judge_collect))

    def _do_menu(self, node: Node) -> Step:
        timeout = float(node["timeout"])
        spec = DigitSpec(1, 1, "", timeout, timeout)
        return (yield from self._attempts(node, spec, self._judge_menu))

    def _attempts(
        self, node: Node, spec: DigitSpec, judge: Callable[[Node, DigitsResult], tuple[str, str]]
    ) -> Step:
        """One GetDigits per attempt; invalid/timeout prompts before each retry."""
        retry = node.get("retry_prompts", node["prompts"])
        attempts = node["attempts"]
        for attempt in range(1, attempts + 1):
            prompts = tuple(node["prompts"] if attempt == 1 else retry)
            self._event("get_digits", node=node.id, attempt=attempt, prompts=list(prompts))
            result = yield GetDigits(prompts, spec, node["barge_in"], self._take_typeahead(),
                                     bool(node.get("sensitive")))
            verdict, detail = judge(node, result)
            if verdict == "ok":
                return detail
            if verdict == "timeout":
                self._event("timeout", node=node.id, attempt=attempt)
                sorry = tuple(node["timeout_prompts"])
            else:
                self._event("invalid", node=node.id, attempt=attempt, why=detail)
                sorry = tuple(node["invalid_prompts"])
            if attempt < attempts and sorry:
                yield from self._play(node, sorry, node["barge_in"])
        self._event("failure", node=node.id, attempts=attempts)
        if node.get("on_failure"):
            return str(node["on_failure"])
        yield Hangup("ivr_failure")
        self._event("hangup", node=node.id, reason="ivr_failure")
        return None

    def _judge_collect(self, node: Node, result: DigitsResult) -> tuple[str, str]:
        name, digits = node["variable"], result.digits
        # a sensitive node added its variable to self.sensitive on entry, so this is masked
        self._event("digits", node=node.id, variable=name, value=self._mask(name, digits), reason=result.reason)
        if result.reason == "timeout" and not digits:
            return "timeout", ""
        if len(digits) < node["min_digits"]:
            return "invalid", "too_short"
        rule = node.get("validate")
        if rule and re.fullmatch(rule["regex"], digits) is None:
            return "invalid", "no_match"
        self.variables[name] = digits
        self._event("collected", node=node.id, variable=name, value=self._mask(name, digits))
        return "ok", str(node["next"])

    def _judge_menu(self, node: Node, result: DigitsResult) -> tuple[str, str]:
        if not result.digits:
            return "timeout", ""
        choice = result.digits
        target = node["options"].get(choice)
        if target is None:
            self._event("digits", node=node.id, variable=node.get("variable"), value=choice, reason=result.reason)
            return "invalid", "unknown_option"
        if node.get("variable"):
            self.variables[node["variable"]] = choice
        self._event("menu", node=node.id, choice=choice, next=target)
        return "ok", str(target)

    def _do_set(self, node: Node) -> Step:
        for name, source in node["vars"].items():
            self.variables[name] = self._render(node, source, f"vars.{name}")
            self._event("set", node=node.id, variable=name, value=self._mask(name, self.variables[name]))
        return str(node["next"])
        yield  # a generator like every handler

    def _do_branch(self, node: Node) -> Step:
        for i, cond in enumerate(node["conditions"]):
            if self._test(node, cond["if"], f"conditions.{i}.if"):
                self._event("branch", node=node.id, condition=i, next=cond["next"])
                return str(cond["next"])
        self._event("branch", node=node.id, condition="default", next=node["default"])
        return str(node["default"])
        yield

    def _do_goto(self, node: Node) -> Step:
        return str(node["node"])
        yield

    def _do_record(self, node: Node) -> Step:
        self._event("record", node=node.id, action=node["action"])
        yield RecordControl(str(node["action"]))
        return str(node["next"])

    def _do_hangup(self, node: Node) -> Step:
        self._event("hangup", node=node.id, reason=node["reason"])
        yield Hangup(str(node["reason"]))
        return None

    def _do_hours(self, node: Node) -> Step:
        now = yield GetTime()
        rules = hours_mod.build_hours(node["timezone"], node["schedule"], node["holidays"])
        is_open = rules.is_open(now)
        local = now.astimezone(rules.zone)
        self._event("hours", node=node.id, open=is_open, local_time=local.isoformat(timespec="minutes"))
        return str(node["open"] if is_open else node["closed"])

    def _do_queue(self, node: Node) -> Step:
        # like app_queue: the call joins at once and hears its entry prompts in the queue
        data = tuple((k, self._render(node, v, f"data.{k}")) for k, v in node["data"].items())
        timeout = node.get("timeout")
        self._event("queue", node=node.id, queue=node["queue"], priority=node["priority"])
        result = yield EnterQueue(
            queue=str(node["queue"]),
            priority=int(node["priority"]),
            skills=tuple((k, int(v)) for k, v in node["skills"].items()),
            data=data,
            timeout=None if timeout is None else float(timeout),
            music=node.get("music"),
            prompts=tuple(node["prompts"] or ()),
        )
        self.variables["queue_outcome"] = result.outcome
        self._event("queue_result", node=node.id, outcome=result.outcome, target=result.target)
        if result.target and result.target in self.flow.nodes:
            return str(result.target)
        if node.get("next"):
            return str(node["next"])
        reason = f"queue_{result.outcome}"
        self._event("hangup", node=node.id, reason=reason)
        yield Hangup(reason)
        return None

    def _do_http(self, node: Node) -> Step:
        request = self._http_request(node)
        result = yield request
        self._event(
            "http", node=node.id, method=request.method, url=self._redact(request.url),
            status=result.status, error=result.error,
        )
        failure = self._http_apply(node, result)
        if failure is None:
            return str(node["next"])
        self._event("http_failed", node=node.id, why=failure)
        if node.get("on_failure"):
            return str(node["on_failure"])
        yield Hangup("ivr_failure")
        return None

    def _http_request(self, node: Node) -> HttpRequest:
        headers = [(k, self._render(node, v, f"headers.{k}")) for k, v in node["headers"].items()]
        body = None
        if node.get("json") is not None:
            body = json.dumps(self._render_json(node, node["json"], "json")).encode("utf-8")
            if not any(k.lower() == "content-type" for k, _ in headers):
                headers.append(("Content-Type", "application/json"))
        return HttpRequest(
            method=str(node["method"]),
            url=self._render(node, node["url"], "url"),
            headers=tuple(headers),
            body=body,
            timeout=float(node["timeout"]),
        )

    def _render_json(self, node: Node, value: Any, where: str) -> Any:
        if isinstance(value, str):
            return self._render(node, value, where)
        if isinstance(value, Mapping):
            return {k: self._render_json(node, v, f"{where}.{k}") for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._render_json(node, v, f"{where}.{i}") for i, v in enumerate(value)]
        return value

    def _http_apply(self, node: Node, result: HttpResult) -> str | None:
        """Store the ``set`` fields; returns why the request failed, or None."""
        if result.error is not None or result.status is None:
            return f"error: {result.error or 'no response'}"
        if not 200 <= result.status < 300:
            return f"status {result.status}"
        paths: Mapping[str, str] = node["set"]
        document: Any = None
        if any(p.startswith("json") for p in paths.values()):
            try:
                document = json.loads(result.body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                return "response is not JSON"
        for name, path in paths.items():
            value = _extract(result, document, path)
            if value is None:
                self._event("http_missing", node=node.id, variable=name, path=path)
                value = ""
            self.variables[name] = value
            self._event("set", node=node.id, variable=name, value=self._mask(name, value))
        return None


def _extract(result: HttpResult, document: Any, path: str) -> str | None:
    if path == "status":
        return str(result.status)
    if path == "body":
        return result.body.decode("utf-8", "replace")
    value = document
    for part in path.split(".")[1:]:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


_HANDLERS: dict[str, Callable[[FlowRun, Node], Step]] = {
    name[4:]: func for name, func in vars(FlowRun).items() if name.startswith("_do_")
}
