"""The members of one queue with each one's skip reason kept current.

Routing runs for every call over the members of its queue. Rather than asking every
member whether it may take a call (hundreds of records read per call), the engine keeps,
per queue, the reason each member would be skipped whatever the call (`skip_reason`:
logged out, on call, not ready, ...; None when available), updated whenever an agent
changes, with the available members ranked as `longest_idle` ranks them and the others
in config order. A routing decision then reads these lists and touches only the records
of the available agents it ranks (docs/acd.md, the cost of routing under `why`).
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import Counter
from collections.abc import Iterable, Sequence

from .agents import AgentRuntime


class Roster:
    __slots__ = ("name", "agents", "ids", "penalties", "reasons", "counts", "free", "ready",
                 "ranks", "busy", "order", "gaps")

    def __init__(self, name: str, agents: Sequence[AgentRuntime]) -> None:
        self.name = name
        self.agents = list(agents)  # config order
        # what the configuration fixes (a reload builds new rosters)
        self.ids = [agent.id for agent in self.agents]
        self.penalties = [agent.config.queues.get(name, 0) for agent in self.agents]
        self.order = {agent_id: index for index, agent_id in enumerate(self.ids)}
        # required skill levels -> {position: why that member falls short}, filled by routing
        self.gaps: dict[tuple[tuple[str, int], ...], dict[int, str]] = {}
        self.reasons: list[str | None] = [agent.skip_reason() for agent in self.agents]
        # reason: members skipped for it
        self.counts: dict[str, int] = dict(Counter(r for r in self.reasons if r is not None))
        # positions of the members available now, and of the others (sorted)
        self.free = {i for i, reason in enumerate(self.reasons) if reason is None}
        self.busy = [i for i, reason in enumerate(self.reasons) if reason is not None]
        # the available as `longest_idle` ranks them, (penalty, idle since, position) sorted,
        # None (no call yet) as -inf: an agent's idle time only changes while it is busy
        self.ranks = {index: self._rank(index) for index in self.free}  # position: its entry
        self.ready = sorted(self.ranks.values())

    def _rank(self, index: int) -> tuple[int, float, int]:
        since = self.agents[index].idle_since
        return (self.penalties[index], -math.inf if since is None else since, index)

    def set(self, index: int, reason: str | None) -> None:
        """Member `index` is now skipped for `reason` (None: available)."""
        old = self.reasons[index]
        if old == reason:
            return
        if old is None:
            self.free.discard(index)
            rank = self.ranks.pop(index)
            del self.ready[bisect_left(self.ready, rank)]
            insort(self.busy, index)
        else:
            left = self.counts[old] - 1
            if left:
                self.counts[old] = left
            else:
                del self.counts[old]
        if reason is None:
            self.free.add(index)
            rank = self.ranks[index] = self._rank(index)
            insort(self.ready, rank)
            del self.busy[bisect_left(self.busy, index)]
        else:
            self.counts[reason] = self.counts.get(reason, 0) + 1
        self.reasons[index] = reason

    def available(self) -> list[int]:
        """Config positions of the members available now, in order."""
        return sorted(self.free)

    def __len__(self) -> int:
        return len(self.agents)


def rosters(queues: Iterable[str], agents: Iterable[AgentRuntime]
            ) -> tuple[dict[str, Roster], dict[str, list[tuple[Roster, int]]]]:
    """A roster per queue (members in configuration order; agents removed by a reload
    and still on a call are no members), and each agent's places in them."""
    members: dict[str, list[AgentRuntime]] = {name: [] for name in queues}
    for agent in agents:
        if not agent.retired:
            for queue in agent.config.queues:
                members[queue].append(agent)
    built = {name: Roster(name, group) for name, group in members.items()}
    slots: dict[str, list[tuple[Roster, int]]] = {}
    for roster in built.values():
        for index, agent_id in enumerate(roster.ids):
            slots.setdefault(agent_id, []).append((roster, index))
    return built, slots
