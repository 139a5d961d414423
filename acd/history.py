"""`why` history: routing decisions of the last N calls, bounded per call and in total.

A decision names every agent it weighed; in a large center that is hundreds of agents per
decision, so each stored decision keeps the chosen agents, the best `KEEP_AGENTS` others
and the first `KEEP_AGENTS` skipped (with a count of the rest by reason), and the log as
a whole keeps at most `WHY_DECISIONS` decisions (the oldest calls go first).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import replace

from .actions import Decision

WHY_CALLS = 10_000
WHY_PER_CALL = 100
WHY_DECISIONS = 50_000
KEEP_AGENTS = 10


class WhyLog:
    def __init__(self, limit: int = WHY_CALLS, per_call: int = WHY_PER_CALL,
                 decisions: int = WHY_DECISIONS) -> None:
        self._limit = limit
        self._per_call = per_call
        self._max_decisions = max(decisions, per_call)
        self._decisions = 0
        self._calls: OrderedDict[str, list[Decision]] = OrderedDict()

    def record(self, decision: Decision) -> None:
        """Keep `decision` (trimmed); a no-offer evaluation identical to the previous one is
        dropped (a waiting call is re-evaluated on every agent change)."""
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
    chosen = set(decision.chosen)
    others = [c for c in decision.candidates if c.agent_id not in chosen][:keep]
    kept = {c.agent_id for c in others} | chosen
    candidates = tuple(c for c in decision.candidates if c.agent_id in kept)
    skipped = decision.skipped[:keep]
    if len(candidates) < len(decision.candidates):
        skipped += ((f"+{len(decision.candidates) - len(candidates)} more candidates",
                     "scored below the ones shown"),)
    rest = decision.skipped[keep:]
    if rest:
        counts = Counter(why for _, why in rest)
        reasons = ", ".join(f"{why}: {n}" for why, n in counts.most_common())
        skipped += ((f"+{len(rest)} more", reasons),)
    return replace(decision, candidates=candidates, skipped=skipped)


def _same(a: Decision, b: Decision) -> bool:
    return (a.queue, a.step, a.candidates, a.skipped) == (b.queue, b.step, b.candidates, b.skipped)
