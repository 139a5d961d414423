"""The ACD engine: queues, agents, offers, RONA, wrap-up, announcements, stats.

Sans-IO (DESIGN.md): the driver feeds events with `now`, calls `on_timer(now)` at
`next_deadline()`, and executes what `take_actions()` returns, in order. Nothing
here reads a clock, draws a random number or touches a socket; randomness comes
from the injected `choose(n) -> 0..n-1` and offer ids from `ids()`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any

from .actions import (
    Action,
    AgentChanged,
    Announce,
    Bridge,
    CancelOffer,
    Decision,
    ExitQueue,
    LogEvent,
    Offer,
)
from .agents import BUCKETS, AgentRuntime, Event
from .calls import CallEntry, CallStatus, OfferRecord, QueueLine
from .errors import AcdUsageError
from .history import WHY_CALLS, WhyLog
from .model import NODE_PREFIX, AgentConfig, QueueConfig, State, Status, validate
from .roster import Roster, rosters
from .routing import route
from .stats import QueueCounters, QueueStats, ewt
from .timers import TimerHeap

FAIL_REASONS = ("busy", "decline", "error")
END_BY = ("caller", "agent")


class AcdEngine:
    def __init__(
        self,
        queues: Mapping[str, QueueConfig],
        agents: Mapping[str, AgentConfig],
        *,
        choose: Callable[[int], int],
        ids: Callable[[], str],
        why_limit: int = WHY_CALLS,
    ) -> None:
        validate(queues, agents)
        self._choose = choose
        self._ids = ids
        self._queues: dict[str, QueueConfig] = dict(queues)
        self._agents: dict[str, AgentRuntime] = {a: AgentRuntime(c) for a, c in agents.items()}
        self._rosters: dict[str, Roster] = {}
        self._slots: dict[str, list[tuple[Roster, int]]] = {}  # agent id: its roster places
        self._lines: dict[str, QueueLine] = {name: QueueLine() for name in queues}
        self._counters: dict[str, QueueCounters] = {name: QueueCounters() for name in queues}
        self._calls: dict[str, CallEntry] = {}
        self._offers: dict[str, OfferRecord] = {}
        self._rr: dict[str, str] = {}
        self._why = WhyLog(why_limit)
        self._timers = TimerHeap()
        self._actions: list[Action] = []
        self._available: set[str] = set()
        self._seq = itertools.count()
        self._rebuild_members()

    # ----------------------------------------------------------------- queries

    def take_actions(self) -> list[Action]:
        actions, self._actions = self._actions, []
        return actions

    def next_deadline(self) -> float | None:
        return self._timers.next_deadline()

    def on_timer(self, now: float) -> None:
        self._timers.fire(now)
        self._settle(now)

    def position(self, call_id: str) -> int | None:
        entry = self._calls.get(call_id)
        if entry is None or not entry.queued:
            return None
        return self._lines[entry.queue].position(entry)

    def why(self, call_id: str) -> list[Decision]:
        return self._why.get(call_id)

    def agent_status(self, agent_id: str) -> AgentChanged:
        """Current status/state/reason of an agent (same shape as the change action)."""
        agent = self._agent(agent_id)
        return AgentChanged(agent.id, agent.status, agent.state, agent.reason)

    def agent_call(self, agent_id: str) -> str | None:
        """The call the agent is talking on (None when not on a call)."""
        return self._agent(agent_id).call_id

    def available_agents(self) -> set[str]:
        return set(self._available)

    def stats(self, queue: str, now: float) -> QueueStats:
        self._queue(queue)
        line = self._lines[queue]
        counters = self._counters[queue]
        oldest = line.oldest()
        buckets = dict.fromkeys(BUCKETS, 0)
        for agent_id in self._rosters[queue].ids:
            buckets[self._agents[agent_id].bucket()] += 1
        return QueueStats(
            waiting=len(line),
            longest_wait=0.0 if oldest is None else now - oldest,
            agents_by_state=buckets,
            offered=counters.offered,
            answered=counters.answered,
            abandoned=counters.abandoned,
            service_level_pct=counters.service_level_pct(),
            asa=counters.asa(),
            aht=counters.aht(),
        )

    def gauges(self) -> dict[str, int]:
        """Table sizes; all but `why_calls` return to zero once traffic stops."""
        return {
            "calls": len(self._calls),
            "queued": sum(len(line) for line in self._lines.values()),
            "offers": len(self._offers),
            "timers": len(self._timers),
            "reserved": sum(a.state is State.RESERVED for a in self._agents.values()),
            "on_call": sum(a.state is State.ON_CALL for a in self._agents.values()),
            "why_calls": len(self._why),
        }

    # ------------------------------------------------------------ call events

    def enqueue(
        self,
        call_id: str,
        queue: str,
        *,
        priority: int = 0,
        skills: Mapping[str, int] | None = None,
        data: Mapping[str, Any] | None = None,
        now: float,
        waited: float = 0.0,
    ) -> None:
        """`waited`: seconds already waited (a call handed over by another router)."""
        if not call_id or call_id in self._calls:
            raise AcdUsageError(f"call {call_id!r}: empty or already in the ACD")
        cfg = self._queue(queue)
        skills = dict(skills or {})
        for skill, level in skills.items():
            if not isinstance(skill, str) or isinstance(level, bool) or not isinstance(level, int):
                raise AcdUsageError(f"call {call_id}: skills must map names to integers")
        if waited < 0 or not math.isfinite(waited):
            raise AcdUsageError(f"call {call_id}: waited must be a finite number >= 0")
        since = now - waited if waited else now
        entry = CallEntry(call_id, queue, int(priority), skills, dict(data or {}),
                          enqueued_at=since, joined_at=since, seq=next(self._seq))
        refusal = self._refusal(cfg)
        if refusal is not None:
            self._log(now, call_id, queue, "", "EXITFULL" if refusal == "full" else "EXITEMPTY",
                      position=len(self._lines[queue]) + 1, waittime=0.0)
            self._actions.append(ExitQueue(call_id, refusal, None, queue))
            return
        self._calls[call_id] = entry
        self._join(entry, cfg, now)
        self._settle(now)
        if call_id in self._calls and call_id not in self._why:
            # Nobody could be offered: record why, so `why` explains a waiting call.
            self._why.record(self._decide(entry, now), trimmed=True)
        self._announce(entry, now)

    def adopt_bridged(self, call_id: str, queue: str, agent_id: str, *, waited: float,
                      talked: float, now: float) -> None:
        """A call bridged under another router (docs/cluster.md): the agent is on it until
        `call_ended`; the queue's answered figures do not count it twice."""
        if not call_id or call_id in self._calls:
            raise AcdUsageError(f"call {call_id!r}: empty or already in the ACD")
        cfg = self._queue(queue)
        agent = self._agent(agent_id)
        if agent.state is not State.IDLE or agent.call_id is not None:
            raise AcdUsageError(f"agent {agent_id}: {agent.state.value}, cannot adopt {call_id}")
        bridged_at = now - max(0.0, talked)
        entry = CallEntry(call_id, queue, 0, {}, {}, enqueued_at=bridged_at - max(0.0, waited),
                          joined_at=bridged_at, seq=next(self._seq))
        entry.status, entry.agent_id, entry.bridged_at = CallStatus.BRIDGED, agent_id, bridged_at
        entry.wrapup = cfg.wrapup
        agent.apply(Event.OFFER)
        agent.apply(Event.ANSWER)
        agent.call_id = call_id
        self._calls[call_id] = entry
        self._agent_changed(agent)
        self._settle(now)

    def call_abandoned(self, call_id: str, now: float) -> None:
        entry = self._queued_call(call_id)
        position = self.position(call_id)
        self._cancel_offers(entry, "abandoned", now)
        waittime = now - entry.enqueued_at
        self._log(now, call_id, entry.queue, "", "ABANDON", position=position,
                  origposition=entry.origposition, waittime=waittime)
        counters = self._counters.get(entry.queue)
        if counters is not None:
            counters.on_abandon(waittime, self._queues[entry.queue].service_level)
        self._finish(entry)
        self._settle(now)

    def caller_key(self, call_id: str, digit: str, now: float) -> bool:
        """A key the caller pressed while queued; True when it took them out of the queue.

        Keys not in the queue's `exit_keys`, and keys of a bridged call, are ignored.
        """
        entry = self._call(call_id)
        if not entry.queued:
            return False
        target = self._queues[entry.queue].exit_keys.get(digit)
        if target is None:
            return False
        position = self.position(call_id)
        self._cancel_offers(entry, "exit", now)
        self._log(now, call_id, entry.queue, "", "EXITWITHKEY", key=digit, position=position,
                  origposition=entry.origposition, waittime=now - entry.enqueued_at)
        self._exit(entry, "key", target)
        self._settle(now)
        return True

    def offer_answered(self, offer_id: str, now: float) -> None:
        record = self._offer(offer_id)
        entry = self._calls[record.call_id]
        for other in sorted(entry.offers - {offer_id}):
            self._release(other, now, cancel="answered_elsewhere", event="RINGCANCELED")
        self._drop_offer(record)
        agent = self._agents[record.agent_id]
        agent.apply(Event.ANSWER)
        agent.offer_id = None
        agent.call_id = entry.call_id
        agent.calls[entry.queue] = agent.calls.get(entry.queue, 0) + 1
        self._lines[entry.queue].remove(entry)
        self._cancel_call_timers(entry)
        entry.status = CallStatus.BRIDGED
        entry.agent_id = agent.id
        entry.bridged_at = now
        entry.wrapup = self._queues[entry.queue].wrapup
        entry.skip_until.clear()
        holdtime = now - entry.enqueued_at
        counters = self._counters[entry.queue]
        counters.on_answer(holdtime, self._queues[entry.queue].service_level)
        self._actions.append(Bridge(entry.call_id, agent.id, offer_id, entry.queue))
        self._agent_changed(agent)
        self._log(now, entry.call_id, entry.queue, agent.id, "CONNECT", holdtime=holdtime,
                  ringtime=now - record.started_at, origposition=entry.origposition)
        self._settle(now)

    def offer_failed(self, offer_id: str, reason: str, now: float) -> None:
        if reason not in FAIL_REASONS:
            raise AcdUsageError(f"offer {offer_id}: reason {reason!r} not one of {FAIL_REASONS}")
        record = self._offer(offer_id)
        entry = self._calls[record.call_id]
        retry = self._queues[entry.queue].retry
        entry.skip_until[record.agent_id] = now + retry
        self._release(offer_id, now, cancel=None, event="OFFERFAILED", reason=reason)
        if retry > 0:
            self._set_timer(entry, "retry", now + retry, self._on_retry(entry.call_id))
        self._after_round(entry, now)
        self._settle(now)

    def call_ended(self, call_id: str, by: str, now: float) -> None:
        if by not in END_BY:
            raise AcdUsageError(f"call {call_id}: ended by {by!r}, expected caller or agent")
        entry = self._call(call_id)
        if entry.status is not CallStatus.BRIDGED or entry.agent_id is None:
            raise AcdUsageError(f"call {call_id}: not bridged (use call_abandoned)")
        agent = self._agents[entry.agent_id]
        talk = now - entry.bridged_at
        counters = self._counters.get(entry.queue)
        if counters is not None:
            counters.on_complete(talk)
        agent.talk_time[entry.queue] = agent.talk_time.get(entry.queue, 0.0) + talk
        agent.idle_since = now
        agent.call_id = None
        event = "COMPLETECALLER" if by == "caller" else "COMPLETEAGENT"
        self._log(now, call_id, entry.queue, agent.id, event, holdtime=entry.bridged_at - entry.enqueued_at,
                  calltime=talk, origposition=entry.origposition)
        del self._calls[call_id]
        self._end_agent_call(agent, entry, now)
        self._settle(now)

    # ----------------------------------------------------------- agent events

    def agent_set_status(self, agent_id: str, status: Status | str, reason: str | None = None,
                         *, now: float) -> None:
        agent = self._agent(agent_id)
        try:
            status = Status(status)
        except ValueError:
            raise AcdUsageError(f"agent {agent_id}: unknown status {status!r}") from None
        if agent.retired:
            raise AcdUsageError(f"agent {agent_id}: removed from the configuration")
        if status is not Status.READY and agent.state is State.RESERVED and agent.offer_id:
            self._release_and_requeue(agent.offer_id, now, cancel="agent_status")
        if status is Status.LOGGED_OUT:
            self._logout(agent, now)
        else:
            self._set_status(agent, status, reason or ("" if status is Status.NOT_READY else None), now)
        self._settle(now)

    def agent_reachable(self, agent_id: str, reachable: bool, now: float) -> None:
        agent = self._agent(agent_id)
        if agent.reachable != bool(reachable):
            agent.reachable = bool(reachable)
            self._log(now, "", "", agent.id, "AGENTREACHABLE" if reachable else "AGENTUNREACHABLE")
            self._refresh(agent)
        self._settle(now)

    # ------------------------------------------------------------------ reload

    def reconfigure(self, queues: Mapping[str, QueueConfig], agents: Mapping[str, AgentConfig],
                    now: float) -> None:
        """Apply a new configuration; calls, agent statuses and states survive.

        Calls queued in a removed queue leave with reason `empty`; a removed agent on a
        call keeps it until it ends; new max_wait and relaxation apply from each call's
        entry into its queue.
        """
        validate(queues, agents)
        for name in [n for n in self._queues if n not in queues]:
            for entry in self._lines[name]:
                self._cancel_offers(entry, "removed", now)
                self._log(now, entry.call_id, name, "", "EXITEMPTY", position=self.position(entry.call_id),
                          origposition=entry.origposition, waittime=now - entry.enqueued_at,
                          reason="queue removed")
                self._exit(entry, "empty", None)
            del self._lines[name], self._counters[name]
            self._rr.pop(name, None)
        for agent_id in [a for a in self._agents if a not in agents]:
            self._remove_agent(self._agents[agent_id], now)
        for name in queues:
            self._lines.setdefault(name, QueueLine())
            self._counters.setdefault(name, QueueCounters())
        self._queues = dict(queues)
        for agent_id, config in agents.items():
            runtime = self._agents.get(agent_id)
            if runtime is None:
                self._agents[agent_id] = AgentRuntime(config)
            else:
                runtime.config = config
                runtime.retired = False
        self._rebuild_members()
        for entry in list(self._calls.values()):
            if entry.queued:
                self._arm_call_timers(entry, now)
        for agent in self._agents.values():
            self._refresh(agent)
        self._settle(now)

    # ---------------------------------------------------------------- internals

    def _queue(self, name: str) -> QueueConfig:
        try:
            return self._queues[name]
        except KeyError:
            raise AcdUsageError(f"unknown queue {name!r}") from None

    def _agent(self, agent_id: str) -> AgentRuntime:
        try:
            return self._agents[agent_id]
        except KeyError:
            raise AcdUsageError(f"unknown agent {agent_id!r}") from None

    def _call(self, call_id: str) -> CallEntry:
        try:
            return self._calls[call_id]
        except KeyError:
            raise AcdUsageError(f"unknown or finished call {call_id!r}") from None

    def _queued_call(self, call_id: str) -> CallEntry:
        entry = self._call(call_id)
        if not entry.queued:
            raise AcdUsageError(f"call {call_id}: already bridged (use call_ended)")
        return entry

    def _offer(self, offer_id: str) -> OfferRecord:
        try:
            return self._offers[offer_id]
        except KeyError:
            raise AcdUsageError(f"unknown, answered or finished offer {offer_id!r}") from None

    def _rebuild_members(self) -> None:
        self._rosters, self._slots = rosters(self._queues, self._agents.values())

    def _log(self, now: float, call_id: str, queue: str, agent: str, event: str, **data: Any) -> None:
        clean = {k: round(v, 3) if isinstance(v, float) else v for k, v in data.items()}
        self._actions.append(LogEvent(now, call_id, queue, agent, event, clean))

    def _agent_changed(self, agent: AgentRuntime) -> None:
        self._refresh(agent)
        self._actions.append(AgentChanged(agent.id, agent.status, agent.state, agent.reason))

    def _refresh(self, agent: AgentRuntime) -> None:
        """After any change to the agent: the available set and its queues' rosters."""
        reason = agent.skip_reason()
        if reason is None:
            self._available.add(agent.id)
        else:
            self._available.discard(agent.id)
        for roster, index in self._slots.get(agent.id, ()):
            roster.set(index, reason)

    def _set_timer(self, entry: CallEntry, name: str, when: float, callback: Callable[[float], None]) -> None:
        self._timers.cancel(entry.timers.pop(name, None))
        entry.timers[name] = self._timers.schedule(when, callback)

    def _cancel_call_timers(self, entry: CallEntry) -> None:
        for handle in entry.timers.values():
            self._timers.cancel(handle)
        entry.timers.clear()

    # -- empty / full

    def _staffed(self, queue: str, *, need_reachable: bool) -> bool:
        for agent_id in self._rosters[queue].ids:
            agent = self._agents[agent_id]
            if agent.status is not Status.LOGGED_OUT and (agent.reachable or not need_reachable):
                return True
        return False

    def _is_empty(self, queue: str, rule: str) -> bool:
        """Asterisk joinempty/leavewhenempty: 'loggedin' = nobody logged in,
        strict ('no' to join, 'yes' to leave) = nobody logged in with a registered phone."""
        return not self._staffed(queue, need_reachable=rule != "loggedin")

    def _refusal(self, cfg: QueueConfig) -> str | None:
        if cfg.max_len is not None and len(self._lines[cfg.name]) >= cfg.max_len:
            return "full"
        if cfg.join_empty != "yes" and self._is_empty(cfg.name, cfg.join_empty):
            return "empty"
        return None

    def _check_leave_when_empty(self, now: float) -> None:
        for name, cfg in self._queues.items():
            if cfg.leave_when_empty == "no" or not len(self._lines[name]):
                continue
            if not self._is_empty(name, cfg.leave_when_empty):
                continue
            for entry in self._lines[name]:
                self._cancel_offers(entry, "exit", now)
                self._log(now, entry.call_id, name, "", "EXITEMPTY", position=self.position(entry.call_id),
                          origposition=entry.origposition, waittime=now - entry.enqueued_at)
                self._exit(entry, "empty", None)

    # -- joining, leaving, timers of a queued call

    def _join(self, entry: CallEntry, cfg: QueueConfig, now: float) -> None:
        entry.queue = cfg.name
        entry.joined_at = now
        entry.attempts = 0
        entry.skip_until.clear()
        entry.status = CallStatus.WAITING
        entry.origposition = self._lines[cfg.name].add(entry)
        entry.step = cfg.relax_step(0.0)
        self._counters[cfg.name].offered += 1
        self._log(now, entry.call_id, cfg.name, "", "ENTERQUEUE", position=entry.origposition,
                  priority=entry.priority)
        self._arm_call_timers(entry, now)

    def _arm_call_timers(self, entry: CallEntry, now: float) -> None:
        cfg = self._queues[entry.queue]
        call_id = entry.call_id
        self._timers.cancel(entry.timers.pop("max_wait", None))
        if cfg.max_wait is not None:
            self._set_timer(entry, "max_wait", max(now, entry.joined_at + cfg.max_wait),
                            lambda t: self._on_max_wait(call_id, t))
        self._arm_relax(entry, now)
        if "announce" not in entry.timers and cfg.announce_frequency > 0:
            self._set_timer(entry, "announce", now + cfg.announce_frequency,
                            lambda t: self._on_announce(call_id, t))

    def _arm_relax(self, entry: CallEntry, now: float) -> None:
        cfg = self._queues[entry.queue]
        waited = now - entry.joined_at
        step = cfg.relax_step(waited)
        if step != entry.step:
            entry.step = step
            self._log_relax(entry, cfg, now)
        self._timers.cancel(entry.timers.pop("relax", None))
        if step + 1 < len(cfg.skill_relaxation):
            call_id = entry.call_id
            when = entry.joined_at + cfg.skill_relaxation[step + 1][0]
            self._set_timer(entry, "relax", when, lambda t: self._on_relax(call_id, t))

    def _log_relax(self, entry: CallEntry, cfg: QueueConfig, now: float) -> None:
        delta = cfg.level_delta(entry.step)
        levels = {k: v + delta for k, v in sorted(entry.skills.items())}
        self._log(now, entry.call_id, entry.queue, "", "SKILLRELAX", step=entry.step, delta=delta,
                  levels=levels)

    def _on_relax(self, call_id: str, now: float) -> None:
        entry = self._calls.get(call_id)
        if entry is not None and entry.queued:
            entry.timers.pop("relax", None)
            self._arm_relax(entry, now)

    def _on_retry(self, call_id: str) -> Callable[[float], None]:
        def fire(now: float) -> None:
            entry = self._calls.get(call_id)
            if entry is not None:
                entry.timers.pop("retry", None)
                entry.skip_until = {a: t for a, t in entry.skip_until.items() if t > now}
                if entry.skip_until:
                    self._set_timer(entry, "retry", min(entry.skip_until.values()), self._on_retry(call_id))
        return fire

    def _on_max_wait(self, call_id: str, now: float) -> None:
        entry = self._calls.get(call_id)
        if entry is None or not entry.queued:
            return
        entry.timers.pop("max_wait", None)
        self._timeout(entry, now, offers=None)

    def _timeout(self, entry: CallEntry, now: float, offers: int | None) -> None:
        """max_wait reached (or max_offers_per_call used up): overflow or leave."""
        cfg = self._queues[entry.queue]
        self._cancel_offers(entry, "exit", now)
        extra = {} if offers is None else {"offers": offers}
        self._log(now, entry.call_id, cfg.name, "", "EXITWITHTIMEOUT", position=self.position(entry.call_id),
                  origposition=entry.origposition, waittime=now - entry.enqueued_at, **extra)
        target = cfg.overflow
        if target is not None:
            self._log(now, entry.call_id, cfg.name, "", "OVERFLOW", target=target)
        if target is None or target.startswith(NODE_PREFIX) or entry.hops >= len(self._queues):
            self._exit(entry, "timeout", target if target and target.startswith(NODE_PREFIX) else None)
            return
        new = self._queues[target]
        refusal = self._refusal(new)
        if refusal is not None:
            self._log(now, entry.call_id, target, "", "EXITFULL" if refusal == "full" else "EXITEMPTY",
                      position=len(self._lines[target]) + 1, waittime=now - entry.enqueued_at)
            self._exit(entry, "timeout", None)
            return
        self._counters[cfg.name].exited += 1
        self._lines[cfg.name].remove(entry)
        self._cancel_call_timers(entry)
        entry.hops += 1
        self._join(entry, new, now)
        self._announce(entry, now)

    def _exit(self, entry: CallEntry, reason: str, target: str | None) -> None:
        queue = entry.queue
        if reason != "key" and queue in self._counters:
            self._counters[queue].exited += 1
        self._finish(entry)
        self._actions.append(ExitQueue(entry.call_id, reason, target, queue))

    def _finish(self, entry: CallEntry) -> None:
        self._cancel_call_timers(entry)
        line = self._lines.get(entry.queue)
        if line is not None:
            line.remove(entry)
        self._calls.pop(entry.call_id, None)

    # -- announcements

    def _on_announce(self, call_id: str, now: float) -> None:
        entry = self._calls.get(call_id)
        if entry is not None and entry.queued:
            entry.timers.pop("announce", None)
            self._announce(entry, now)

    def _announce(self, entry: CallEntry, now: float) -> None:
        """Position/EWT to a waiting caller; never while their offer rings, never
        closer than min_announce_gap to the previous one."""
        if entry.call_id not in self._calls or not entry.queued:
            return
        cfg = self._queues[entry.queue]
        if cfg.announce_frequency <= 0 or not (cfg.announce_position or cfg.announce_holdtime):
            return
        call_id = entry.call_id
        last = entry.last_announce
        if last is not None and now - last < cfg.min_announce_gap:
            when = last + cfg.min_announce_gap
        elif entry.status is CallStatus.RINGING:
            when = now + cfg.announce_frequency
        else:
            position = self._lines[entry.queue].position(entry) or 1
            estimate = ewt(position, self._counters[entry.queue].recent_aht(),
                           self._logged_in(entry.queue))
            self._actions.append(Announce(
                call_id, entry.queue, position if cfg.announce_position else None,
                estimate if cfg.announce_holdtime else None))
            entry.last_announce = now
            when = now + cfg.announce_frequency
        self._set_timer(entry, "announce", when, lambda t: self._on_announce(call_id, t))

    def _logged_in(self, queue: str) -> int:
        return sum(self._agents[a].status is not Status.LOGGED_OUT for a in self._rosters[queue].ids)

    # -- offers

    def _settle(self, now: float) -> None:
        self._check_leave_when_empty(now)
        self._dispatch(now)

    def _dispatch_order(self, now: float) -> list[CallEntry]:
        """Waiting calls, best first: queue weight (aged, see docs/acd.md), priority, age."""
        ranked: list[tuple[tuple[float, int, float, int], CallEntry]] = []
        for name, line in self._lines.items():
            if not len(line) or not self._rosters[name].free:
                continue
            cfg = self._queues[name]
            oldest = line.oldest()
            oldest = now if oldest is None else oldest
            weight = cfg.weight + math.floor(max(0.0, now - oldest) / cfg.service_level)
            for entry in line:
                if entry.status is CallStatus.WAITING:
                    ranked.append(((-weight, -entry.priority, entry.enqueued_at, entry.seq), entry))
        ranked.sort(key=lambda item: item[0])
        return [entry for _, entry in ranked]

    def _dispatch(self, now: float) -> None:
        if not self._available:
            return
        for entry in self._dispatch_order(now):
            if not self._available:
                return
            if entry.call_id in self._calls and entry.status is CallStatus.WAITING:
                self._route(entry, now)

    def _decide(self, entry: CallEntry, now: float) -> Decision:
        return route(entry, self._queues[entry.queue], self._rosters[entry.queue], now=now,
                     last_offered=self._rr.get(entry.queue), choose=self._choose)

    def _route(self, entry: CallEntry, now: float) -> None:
        decision = self._decide(entry, now)
        self._why.record(decision, trimmed=True)
        if not decision.chosen:
            return
        entry.attempts += 1
        for agent_id in decision.chosen:
            self._make_offer(entry, self._agents[agent_id], now)

    def _make_offer(self, entry: CallEntry, agent: AgentRuntime, now: float) -> None:
        cfg = self._queues[entry.queue]
        offer_id = self._ids()
        if offer_id in self._offers:
            raise AcdUsageError(f"id source repeated offer id {offer_id!r}")
        agent.apply(Event.OFFER)
        agent.offer_id = offer_id
        timer = self._timers.schedule(now + cfg.ring_timeout, lambda t: self._on_ring_timeout(offer_id, t))
        self._offers[offer_id] = OfferRecord(offer_id, entry.call_id, agent.id, cfg.name, now, timer)
        entry.offers.add(offer_id)
        entry.status = CallStatus.RINGING
        self._rr[cfg.name] = agent.id
        pop = {
            "call_id": entry.call_id, "queue": cfg.name, "priority": entry.priority,
            "skills": dict(entry.skills), "waited": round(now - entry.enqueued_at, 3),
            "attempt": entry.attempts, "data": dict(entry.data),
        }
        self._actions.append(Offer(offer_id, entry.call_id, agent.id, cfg.name, cfg.ring_timeout,
                                   entry.attempts, pop))
        self._agent_changed(agent)
        self._log(now, entry.call_id, cfg.name, agent.id, "OFFER", attempt=entry.attempts,
                  ring_timeout=cfg.ring_timeout)

    def _drop_offer(self, record: OfferRecord) -> None:
        self._timers.cancel(record.timer)
        del self._offers[record.offer_id]
        entry = self._calls.get(record.call_id)
        if entry is not None:
            entry.offers.discard(record.offer_id)

    def _release(self, offer_id: str, now: float, *, cancel: str | None, event: str,
                 notify: bool = True, **data: Any) -> None:
        """End one offer without an answer; the agent returns to IDLE."""
        record = self._offers[offer_id]
        self._drop_offer(record)
        agent = self._agents[record.agent_id]
        agent.apply(Event.RELEASE)
        agent.offer_id = None
        if cancel is not None:
            self._actions.append(CancelOffer(offer_id, record.call_id, agent.id, cancel))
        self._log(now, record.call_id, record.queue, agent.id, event,
                  ringtime=now - record.started_at, **data)
        if notify:
            self._agent_changed(agent)

    def _release_and_requeue(self, offer_id: str, now: float, *, cancel: str) -> None:
        record = self._offers[offer_id]
        self._release(offer_id, now, cancel=cancel, event="RINGCANCELED")
        self._after_round(self._calls[record.call_id], now)

    def _cancel_offers(self, entry: CallEntry, reason: str, now: float) -> None:
        for offer_id in sorted(entry.offers):
            self._release(offer_id, now, cancel=reason, event="RINGCANCELED")
        if entry.status is CallStatus.RINGING:
            entry.status = CallStatus.WAITING

    def _after_round(self, entry: CallEntry, now: float) -> None:
        """The call's last offer ended unanswered: it waits again at its place in line."""
        if entry.offers or entry.call_id not in self._calls:
            return
        entry.status = CallStatus.WAITING
        limit = self._queues[entry.queue].max_offers_per_call
        if limit is not None and entry.attempts >= limit:
            self._timeout(entry, now, offers=entry.attempts)

    def _on_ring_timeout(self, offer_id: str, now: float) -> None:
        """RONA: the agent goes NOT_READY 'no answer'; the call keeps its place."""
        record = self._offers.get(offer_id)
        if record is None:
            return
        agent = self._agents[record.agent_id]
        self._release(offer_id, now, cancel="timeout", event="RINGNOANSWER", notify=False)
        if agent.status is Status.READY and not agent.retired:
            self._set_status(agent, Status.NOT_READY, "no answer", now)
        else:
            self._agent_changed(agent)
        self._after_round(self._calls[record.call_id], now)

    # -- agent status and call end

    def _set_status(self, agent: AgentRuntime, status: Status, reason: str | None, now: float) -> None:
        agent.pending_logout = False
        old, old_reason = agent.status, agent.reason
        if status is old and reason == old_reason:
            self._refresh(agent)
            return
        agent.set_status(status, reason)
        if old is Status.LOGGED_OUT:
            self._log(now, "", "", agent.id, "AGENTLOGIN", queues=",".join(agent.config.queues))
        if status is Status.READY:
            self._log(now, "", "", agent.id, "AGENTREADY")
        else:
            self._log(now, "", "", agent.id, "AGENTNOTREADY", reason=agent.reason or "")
        self._agent_changed(agent)

    def _logout(self, agent: AgentRuntime, now: float) -> None:
        if agent.state is State.ON_CALL:
            agent.pending_logout = True  # applied when the call ends
            self._refresh(agent)
            return
        if agent.state is State.WRAP_UP:
            self._end_wrapup(agent, now, Event.LOGOUT)
        if agent.status is Status.LOGGED_OUT:
            return
        agent.set_status(Status.LOGGED_OUT, None)
        self._log(now, "", "", agent.id, "AGENTLOGOFF")
        self._agent_changed(agent)

    def _end_agent_call(self, agent: AgentRuntime, entry: CallEntry, now: float) -> None:
        if agent.retired:
            agent.apply(Event.END_NO_WRAPUP)
            del self._agents[agent.id]
            self._available.discard(agent.id)
            return
        if agent.pending_logout:
            agent.apply(Event.END_NO_WRAPUP)
            agent.pending_logout = False
            self._logout(agent, now)
            return
        if entry.wrapup > 0:
            agent.apply(Event.END)
            self._log(now, entry.call_id, entry.queue, agent.id, "WRAPUPSTART", wrapup=entry.wrapup)
            agent.wrapup_timer = self._timers.schedule(
                now + entry.wrapup, lambda t: self._end_wrapup(agent, t, Event.WRAPUP_DONE))
        else:
            agent.apply(Event.END_NO_WRAPUP)
        self._agent_changed(agent)

    def _end_wrapup(self, agent: AgentRuntime, now: float, event: Event) -> None:
        self._timers.cancel(agent.wrapup_timer)
        agent.wrapup_timer = None
        if agent.state is not State.WRAP_UP or self._agents.get(agent.id) is not agent:
            return
        agent.apply(event)
        self._log(now, "", "", agent.id, "WRAPUPEND")
        self._agent_changed(agent)

    def _remove_agent(self, agent: AgentRuntime, now: float) -> None:
        if agent.state is State.RESERVED and agent.offer_id:
            self._release_and_requeue(agent.offer_id, now, cancel="removed")
        if agent.state is State.ON_CALL:
            agent.retired = True
            self._refresh(agent)
            return
        if agent.state is State.WRAP_UP:
            self._end_wrapup(agent, now, Event.LOGOUT)
        if agent.status is not Status.LOGGED_OUT:
            self._log(now, "", "", agent.id, "AGENTLOGOFF", reason="removed")
        del self._agents[agent.id]
        self._available.discard(agent.id)
        for queue, last in list(self._rr.items()):
            if last == agent.id:
                del self._rr[queue]
