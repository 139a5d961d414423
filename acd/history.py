"""`why` history: routing decisions of the last N calls, bounded per call and in total.

A decision names every agent it weighed; in a large center that is hundreds of agents per
decision, so each stored decision keeps the chosen agents, the best `KEEP_AGENTS` others
and the first `KEEP_AGENTS` skipped (with a count of the rest by reason), and the log as
a whole keeps at most `WHY_DECISIONS` decisions (the oldest calls go first).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TypeVar

from .actions import Decision

WHY_CALLS = 10_000
WHY_PER_CALL = 100
WHY_DECISIONS = 50_000
KEEP_AGENTS = 10

T = TypeVar("T", bound=tuple)  # type: ignore[type-arg]


class WhyLog:
    def __init__(self, limit: int = WHY_CALLS, per_call: int = WHY_PER_CALL,
                 decisions: int = WHY_DECISIONS) -> None:
        self._limit = limit
        self._per_call = per_call
        self._max_decisions = max(decisions, per_call)
        self._decisions = 0
        self._calls: OrderedDict[str, list[Decision]] = OrderedDict()

    def record(self, decision: Decision, *, trimmed: bool = False) -> None:
        """Keep `decision` (trimmed here unless `trimmed`: cut down already, as
        `routing.route` returns it); a no-offer evaluation identical to the previous one is
        dropped (a waiting call is re-evaluated on every agent change)."""
        if not trimmed:
            decision = trim(decision)
        history = self._calls.get(decision.call_id)
        if history is None:
            history = self._calls[decision.call_id] = []
        else:
            self._calls.move_to_end(decision.call_id)
            last = history[-1]
            if not decision.chosen and _same(last, decision):
                return
        history.append(decision)
        self._decisions += 1
        if len(history) > self._per_call:
            del history[0]
            self._decisions -= 1
        while len(self._calls) > self._limit or self._decisions > self._max_decisions:
            _, dropped = self._calls.popitem(last=False)
            self._decisions -= len(dropped)

    def get(self, call_id: str) -> list[Decision]:
        return list(self._calls.get(call_id, ()))

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._calls

    def __len__(self) -> int:
        return len(self._calls)

    @property
    def decisions(self) -> int:
        return self._decisions


def trim(decision: Decision, keep: int = KEEP_AGENTS) -> Decision:
    """The chosen agents, the best `keep` other candidates and the first `keep` skipped;
    the rest of the skipped summed up by reason in one last entry."""
    if len(decision.candidates) <= keep and len(decision.skipped) <= keep:
        return decision
    candidates = kept(decision.candidates, decision.chosen, keep)
    rest = decision.skipped[keep:]
    skipped = summed_up(decision.skipped[:keep], len(decision.candidates) - len(candidates),
                        len(rest), Counter(why for _, why in rest))
    return replace(decision, candidates=tuple(candidates), skipped=skipped)


def kept(candidates: Sequence[T], chosen: Sequence[str], keep: int = KEEP_AGENTS) -> list[T]:
    """The candidates `trim` keeps, in rank order: the chosen and the best `keep` others
    (each candidate a tuple whose first item is the agent id)."""
    picked = set(chosen)
    others = [c for c in candidates if c[0] not in picked][:keep]
    picked.update([c[0] for c in others])
    return [c for c in candidates if c[0] in picked]


def summed_up(head: tuple[tuple[str, str], ...], dropped: int, rest: int,
              counts: Mapping[str, int]) -> tuple[tuple[str, str], ...]:
    """The skipped entries `trim` keeps: the first ones (`head`), a line for the
    `dropped` candidates not shown, and one for the `rest` skipped by reason (`counts`),
    most frequent first, then by name."""
    skipped = head
    if dropped:
        skipped += ((f"+{dropped} more candidates", "scored below the ones shown"),)
    if rest:
        ranked = sorted([(-n, why) for why, n in counts.items() if n > 0])
        reasons = ", ".join(f"{why}: {-negative}" for negative, why in ranked)
        skipped += ((f"+{rest} more", reasons),)
    return skipped


def _same(a: Decision, b: Decision) -> bool:
    return (a.queue, a.step, a.candidates, a.skipped) == (b.queue, b.step, b.candidates, b.skipped)
