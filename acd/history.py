"""`why` history: routing decisions of the last N calls, bounded per call too."""

from __future__ import annotations

from collections import OrderedDict

from .actions import Decision

WHY_CALLS = 10_000
WHY_PER_CALL = 100


class WhyLog:
    def __init__(self, limit: int = WHY_CALLS, per_call: int = WHY_PER_CALL) -> None:
        self._limit = limit
        self._per_call = per_call
        self._calls: OrderedDict[str, list[Decision]] = OrderedDict()

    def record(self, decision: Decision) -> None:
        """Keep `decision`; a no-offer evaluation identical to the previous one is dropped
        (a waiting call is re-evaluated on every agent change)."""
        history = self._calls.get(decision.call_id)
        if history is None:
            history = self._calls[decision.call_id] = []
            while len(self._calls) > self._limit:
                self._calls.popitem(last=False)
        else:
            self._calls.move_to_end(decision.call_id)
            last = history[-1]
            if not decision.chosen and _same(last, decision):
                return
        history.append(decision)
        if len(history) > self._per_call:
            del history[0]

    def get(self, call_id: str) -> list[Decision]:
        return list(self._calls.get(call_id, ()))

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._calls

    def __len__(self) -> int:
        return len(self._calls)


def _same(a: Decision, b: Decision) -> bool:
    return (a.queue, a.step, a.candidates, a.skipped) == (b.queue, b.step, b.candidates, b.skipped)
