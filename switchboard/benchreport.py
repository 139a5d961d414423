"""The figures of a `switchboard bench` run, and its report files.

Pure functions: what the bench measured goes in (SIPp's per-call setup log, the
outcome of each call, the step windows with the server samples taken in them, the
pacing of each window), figures and files come out. Nothing here starts a process
or reads a clock, so every figure can be checked on made-up data.

Definitions, all measured on the SIPp side (outside the server):

- post-dial delay (PDD): INVITE sent -> first 180/183 received, or the 200 OK when
  the server sent no 18x;
- time to answer (TTA): INVITE sent -> 200 OK received;
- percentiles are nearest-rank: the smallest value with at least p % of the values
  at or below it (p99 of 100 values is the 99th smallest).
"""

from __future__ import annotations

import bisect
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .benchplateau import plateau_line

_TIME = r"([0-9.]*)/([0-9.]*)"
_LINE = re.compile(r"^bench (invite|answer|done) (\S+)(.*)$")
_STAMP = re.compile(r"(p180|p183|ok|at)=" + _TIME)
NO_PNG_HINT = "pip install 'switchboard[bench]'"


@dataclass(frozen=True)
class CallTimes:
    """One SIPp call: epoch seconds of its INVITE, first 18x and 200 OK."""

    call_id: str
    invite: float
    provisional: float | None = None
    answer: float | None = None
    done: bool = False

    @property
    def pdd_ms(self) -> float | None:
        first = self.provisional if self.provisional is not None else self.answer
        return None if first is None else (first - self.invite) * 1000.0

    @property
    def tta_ms(self) -> float | None:
        return None if self.answer is None else (self.answer - self.invite) * 1000.0


@dataclass(frozen=True)
class StepPlan:
    """What step k offers: SIPp's open-call limit and rate, and the number of calls SIPp
    has created in all when the step ends."""

    limit: int
    rate: float
    until: int


def plan_steps(calls: int, concurrency: int, cps: float, steps: int) -> list[StepPlan]:
    """Step k of N: limit ceil(C * k / N), rate R * k / N, until round(calls * k / N)."""
    return [StepPlan(max(1, math.ceil(concurrency * k / steps)), round(cps * k / steps, 3),
                     round(calls * k / steps)) for k in range(1, steps + 1)]


def media_span(calls: int) -> int:
    """RTP ports a SIPp process placing `calls` calls needs: [auto_media_port] gives call n
    the port base + 4 (n - 1), modulo 10,000."""
    return min(4 * max(1, calls), 10000)


def split_evenly(total: int, parts: int) -> list[int]:
    """`total` over `parts` as evenly as integers allow, larger shares first (7 over 2 is
    [4, 3]); every share is at least 1 when total >= parts."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def split_rate(rate: float, calls: Sequence[int]) -> list[float]:
    """A call rate shared in proportion to each node's calls, so that every node's SIPp
    finishes placing at the same time."""
    total = sum(calls)
    return [round(rate * c / total, 3) for c in calls]


def caller_ports(base: int, calls: Sequence[int]) -> list[int]:
    """First RTP port of each node's caller SIPp: consecutive blocks from `base`."""
    out, port = [], base
    for n in calls:
        out.append(port)
        port += media_span(n)
    return out


def rtp_ranges(low: int, high: int, parts: int) -> list[tuple[int, int]]:
    """Each node's own slice of the servers' RTP range, of an even size (RTP takes even
    ports, RTCP the odd one after): 20000-29999 over 2 is 20000-24999 and 25000-29999."""
    size = (high - low + 1) // parts
    size -= size % 2
    return [(low + i * size, low + (i + 1) * size - 1) for i in range(parts)]


def node_cpus(spec: str | None, nodes: int, ncpu: int) -> list[str | None]:
    """The taskset core list of each node. One node gets `spec` as given (default "0"); with
    several, a comma list hands node i its i-th entry (cycling: "0" puts them all on core
    0), and without one node i goes on core i mod ncpu."""
    if nodes == 1:
        return [spec or "0"]
    if spec is None:
        return [str(i % max(1, ncpu)) for i in range(nodes)]
    cores = [c.strip() for c in spec.split(",") if c.strip()] or ["0"]
    return [cores[i % len(cores)] for i in range(nodes)]


def merge_health(bodies: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Several nodes' /api/health as one server's: calls and bridged calls summed; the media
    clock's lateness and work the worst node's, its skipped ticks summed; GC pauses summed,
    their maximum the largest. One body comes back as it is."""
    if len(bodies) == 1:
        return bodies[0]
    clocks = [b.get("media_clock", {}) for b in bodies]
    gcs = [b.get("gc", {}) for b in bodies]

    def worst(items: list[dict[str, Any]], key: str) -> Any:
        values = [i[key] for i in items if i.get(key) is not None]
        return max(values) if values else None

    def total(items: list[dict[str, Any]], key: str) -> Any:
        values = [i[key] for i in items if i.get(key) is not None]
        return sum(values) if values else None

    return {
        "calls": sum(int(b.get("calls", 0)) for b in bodies),
        "bridged": sum(int(b.get("bridged", 0)) for b in bodies),
        "media_clock": {"late_p99_ms": worst(clocks, "late_p99_ms"),
                        "work_p99_ms": worst(clocks, "work_p99_ms"),
                        "skipped": total(clocks, "skipped")},
        "gc": {"pauses": total(gcs, "pauses"), "pause_max_ms": worst(gcs, "pause_max_ms")},
    }


CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def parse_proc_stat(text: str) -> dict[int, tuple[int, ...]]:
    """Each core's jiffies from the text of /proc/stat: {core: (user, nice, system, idle,
    iowait, irq, softirq, steal)}. Only the `cpuN` lines count (not the `cpu` total);
    columns a kernel does not print are 0, the guest columns after steal are left out
    (the kernel already counts guest time in user and nice)."""
    out: dict[int, tuple[int, ...]] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or not name[3:].isdigit():
            continue
        try:
            values = [int(v) for v in rest.split()[:len(CPU_FIELDS)]]
        except ValueError:
            continue
        out[int(name[3:])] = tuple(values + [0] * (len(CPU_FIELDS) - len(values)))
    return out


def cpu_list(spec: str | None) -> list[int] | None:
    """The cores of a taskset list ("0", "0,1", "0-2,5"); None when it is not one."""
    if not spec:
        return None
    cores: set[int] = set()
    for part in spec.split(","):
        lo, dash, hi = part.strip().partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            return None
        cores.update(range(int(lo), int(hi if dash else lo) + 1))
    return sorted(cores) or None


def steal_pct(before: dict[int, tuple[int, ...]] | None, after: dict[int, tuple[int, ...]] | None,
              cores: Sequence[int] | None) -> float | None:
    """Steal jiffies / all jiffies of `cores` between two /proc/stat readings, in percent
    (2 decimals): the share of the span in which the hypervisor ran something else while
    these cores had work. None without both readings, without cores, when a core is not
    in them, or when no jiffy passed."""
    if not before or not after or not cores:
        return None
    if any(c not in before or c not in after for c in cores):
        return None
    steal = total = 0
    for c in cores:
        delta = [b - a for a, b in zip(before[c], after[c], strict=True)]
        steal += delta[CPU_FIELDS.index("steal")]
        total += sum(delta)
    return round(100.0 * steal / total, 2) if total > 0 else None


@dataclass
class Step:
    """One step of the ramp: what was offered and what the server did meanwhile.

    `start`/`end` are epoch seconds. The samples come from /proc (CPU, RSS), SIPp's
    statistics (calls it held open) and /api/health (calls up, media clock)."""

    index: int
    limit: int
    rate: float
    start: float
    end: float = 0.0
    cpu_s: float = 0.0
    rss_kib_start: int = 0
    rss_kib_peak: int = 0
    sipp_peak_calls: int = 0
    server_peak_calls: int = 0
    clock_late_p99_ms: float | None = None
    health_rtt_ms_max: float | None = None
    cpu_steal_pct_server: float | None = None
    cpu_steal_pct_sipp: float | None = None


def percentile(values: Iterable[float], p: float) -> float | None:
    """Nearest-rank percentile (0 < p <= 100); None without values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(len(ordered) * p / 100.0))
    return ordered[min(rank, len(ordered)) - 1]


def _stamp(seconds: str, micros: str) -> float | None:
    if not seconds:
        return None
    return int(float(seconds)) + int(float(micros or 0)) / 1e6


def parse_setup_log(text: str) -> dict[str, CallTimes]:
    """Calls from the `<log>` lines of ivr_load.xml:

        bench invite CALL_ID at=S/US
        bench answer CALL_ID p180=S/US p183=S/US ok=S/US   (an 18x not received is empty)
        bench done CALL_ID

    SIPp prints its gettimeofday variables as doubles ("1795410221.000000"). Lines that do
    not parse are skipped: a log cut short by a killed SIPp still gives what it holds."""
    calls: dict[str, CallTimes] = {}
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if not m:
            continue
        kind, call_id, rest = m.groups()
        stamps = {k: _stamp(s, us) for k, s, us in _STAMP.findall(rest)}
        known, at = calls.get(call_id), stamps.get("at")
        if kind == "invite" and at is not None:
            calls[call_id] = CallTimes(call_id, at)
        elif kind == "answer" and known is not None:
            early = [t for t in (stamps.get("p180"), stamps.get("p183")) if t is not None]
            calls[call_id] = CallTimes(call_id, known.invite, min(early) if early else None,
                                       stamps.get("ok"), known.done)
        elif kind == "done" and known is not None:
            calls[call_id] = CallTimes(call_id, known.invite, known.provisional, known.answer,
                                       True)
    return calls


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def timing(calls: Iterable[CallTimes]) -> dict[str, float | None]:
    """PDD and TTA p50/p99 in ms over the calls that got that far."""
    calls = list(calls)
    pdd = [c.pdd_ms for c in calls if c.pdd_ms is not None]
    tta = [c.tta_ms for c in calls if c.tta_ms is not None]
    return {"pdd_p50_ms": _ms(percentile(pdd, 50)), "pdd_p99_ms": _ms(percentile(pdd, 99)),
            "tta_p50_ms": _ms(percentile(tta, 50)), "tta_p99_ms": _ms(percentile(tta, 99))}


def placing(calls: Iterable[CallTimes]) -> dict[str, float | None]:
    """The rate SIPp sent INVITEs at, from its own stamps: `cps_placed`, INVITEs per
    second between the first and the last (the mean); `cps_placed_min`, the fewest sent
    in any whole second of that span (what "sustained" means: 0 when SIPp stalled for a
    second). None for fewer than two INVITEs, the minimum also for a span under 2 s."""
    stamps = sorted(c.invite for c in calls)
    if len(stamps) < 2 or stamps[-1] <= stamps[0]:
        return {"cps_placed": None, "cps_placed_min": None}
    first, span = stamps[0], stamps[-1] - stamps[0]
    whole = int(span)  # seconds [first + k, first + k + 1) for k < whole
    per_second = [0] * whole
    for t in stamps:
        k = int(t - first)
        if k < whole:
            per_second[k] += 1
    return {"cps_placed": round((len(stamps) - 1) / span, 2),
            "cps_placed_min": float(min(per_second)) if whole >= 2 else None}


def split_by_step(steps: Sequence[Step], calls: Iterable[CallTimes]) -> list[list[CallTimes]]:
    """Each call goes to the step its INVITE was sent in (before the first step: the
    first; after the last step's end: the last)."""
    starts = [s.start for s in steps]
    out: list[list[CallTimes]] = [[] for _ in steps]
    for call in calls:
        out[max(0, bisect.bisect_right(starts, call.invite) - 1)].append(call)
    return out


def step_rows(steps: Sequence[Step], calls: Iterable[CallTimes], outcomes: dict[str, str],
              pacing: Sequence[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row of figures per step. `outcomes` maps a call id to "completed" or the reason
    it failed; `pacing` holds one pacing summary per step (None: no capture)."""
    if not steps:
        return []
    t0 = steps[0].start
    rows = []
    for i, (step, mine) in enumerate(zip(steps, split_by_step(steps, calls), strict=True)):
        reasons: dict[str, int] = {}
        for call in mine:
            why = outcomes.get(call.call_id, "unknown")
            if why != "completed":
                reasons[why] = reasons.get(why, 0) + 1
        duration = max(0.0, step.end - step.start)
        late = pacing[i] if pacing and i < len(pacing) else {}
        rows.append({
            "step": step.index,
            "offered_concurrency": step.limit,
            "offered_cps": step.rate,
            "start_s": round(step.start - t0, 1),
            "duration_s": round(duration, 1),
            "attempted": len(mine),
            "calls_up_peak": max(step.sipp_peak_calls, step.server_peak_calls),
            "completed": len(mine) - sum(reasons.values()),
            "failed": sum(reasons.values()),
            "failed_by_reason": reasons,
            **timing(mine),
            **placing(mine),
            "cpu_pct_of_core": round(100.0 * step.cpu_s / duration, 1) if duration else None,
            "rss_kib_peak": step.rss_kib_peak,
            "media_clock_late_p99_ms": step.clock_late_p99_ms,
            "health_rtt_ms_max": step.health_rtt_ms_max,
            "cpu_steal_pct_server": step.cpu_steal_pct_server,
            "cpu_steal_pct_sipp": step.cpu_steal_pct_sipp,
            "rtp_late_pct": late.get("rtp_late_pct"),
            "rtp_interarrival_err_p99_ms": late.get("rtp_interarrival_err_p99_ms"),
        })
    return rows


# -- report files ----------------------------------------------------------------------------

COLUMNS = (  # (row key, markdown header)
    ("step", "step"),
    ("offered_concurrency", "offered calls"),
    ("offered_cps", "offered cps"),
    ("cps_placed", "placed cps"),
    ("cps_placed_min", "placed cps, worst second"),
    ("duration_s", "s"),
    ("calls_up_peak", "calls up"),
    ("attempted", "attempted"),
    ("completed", "completed"),
    ("failed", "failed"),
    ("pdd_p50_ms", "PDD p50 ms"),
    ("pdd_p99_ms", "PDD p99 ms"),
    ("tta_p50_ms", "TTA p50 ms"),
    ("tta_p99_ms", "TTA p99 ms"),
    ("cpu_pct_of_core", "CPU %"),
    ("rss_kib_peak", "RSS KiB"),
    ("media_clock_late_p99_ms", "clock late p99 ms"),
    ("rtp_late_pct", "RTP late %"),
    ("cpu_steal_pct_server", "steal % server"),
    ("cpu_steal_pct_sipp", "steal % SIPp"),
)


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def totals_row(result: dict[str, Any]) -> dict[str, Any]:
    """The whole run in the shape of a step row."""
    return {
        "step": "total", "offered_concurrency": result.get("concurrency"),
        "offered_cps": result.get("cps_target"), "cps_placed": result.get("cps_placed"),
        "cps_placed_min": result.get("cps_placed_min"), "duration_s": result.get("elapsed_s"),
        "calls_up_peak": result.get("max_concurrent"), "attempted": result.get("attempted"),
        "completed": result.get("completed"), "failed": result.get("failed"),
        "pdd_p50_ms": result.get("pdd_p50_ms"), "pdd_p99_ms": result.get("pdd_p99_ms"),
        "tta_p50_ms": result.get("tta_p50_ms"), "tta_p99_ms": result.get("tta_p99_ms"),
        "cpu_pct_of_core": result.get("cpu_pct_of_core"),
        "rss_kib_peak": result.get("rss_kib_peak"),
        "media_clock_late_p99_ms": result.get("media_clock_late_p99_ms"),
        "rtp_late_pct": result.get("rtp_late_pct"),
        "cpu_steal_pct_server": result.get("cpu_steal_pct_server"),
        "cpu_steal_pct_sipp": result.get("cpu_steal_pct_sipp"),
    }


def markdown(result: dict[str, Any]) -> str:
    """One table row per step and a bold totals row, then the failure reasons."""
    header = "| " + " | ".join(h for _, h in COLUMNS) + " |"
    rule = "|" + "|".join("---" if k == "step" else "---:" for k, _ in COLUMNS) + "|"
    lines = ["# switchboard bench", "",
             f"{result.get('attempted')} calls, {result.get('cps')} cps achieved, "
             f"{result.get('elapsed_s')} s, {result.get('cpu_s_per_call')} CPU s/call, "
             f"{result.get('rss_kib_per_call')} KiB RSS/call.", "", header, rule]
    for row in result.get("steps", []):
        lines.append("| " + " | ".join(_cell(row.get(k)) for k, _ in COLUMNS) + " |")
    total = totals_row(result)
    lines.append("| " + " | ".join(f"**{_cell(total.get(k))}**" for k, _ in COLUMNS) + " |")
    reasons = result.get("failed_by_reason") or {}
    lines += ["", "Failed by reason: " + (", ".join(f"{k} {v}" for k, v in sorted(reasons.items()))
                                          or "none") + "."]
    lines.append(f"DTMF right in {result.get('digits_right')} of {result.get('completed')} "
                 "completed calls.")
    if result.get("rtp_late_pct") is None:
        lines.append("RTP pacing not measured (no capture).")
    else:
        lines.append(f"RTP pacing (capture): inter-arrival error p50 "
                     f"{_cell(result.get('rtp_interarrival_err_p50_ms'))} ms, p99 "
                     f"{_cell(result.get('rtp_interarrival_err_p99_ms'))} ms; "
                     f"{_cell(result.get('rtp_late_frames'))} late frames "
                     f"({_cell(result.get('rtp_late_pct'))} %).")
    lines.append(steal_line(result))
    if "plateau_of" in result:
        lines.append(plateau_line(result))
    if result.get("sipp_cpu_s") is not None:
        lines.append(f"SIPp: {_cell(result.get('sipp_cpu_s'))} CPU s "
                     f"({_cell(result.get('sipp_cpu_pct_of_core'))} % of a core), up to "
                     f"{_cell(result.get('sipp_threads_peak'))} threads; load average (1 min) "
                     f"peak {_cell(result.get('loadavg_1m_peak'))}.")
    lines += node_lines(result)
    if result.get("pops") is not None:
        lines.append(f"Screen pops: {result['pops']}, latency p50 "
                     f"{_cell(result.get('pop_latency_p50_ms'))} ms, p99 "
                     f"{_cell(result.get('pop_latency_p99_ms'))} ms.")
    return "\n".join(lines) + "\n"


def steal_line(result: dict[str, Any]) -> str:
    """The hypervisor's steal on the server's and SIPp's cores, which bounds the pacing."""
    server, sipp = result.get("cpu_steal_pct_server"), result.get("cpu_steal_pct_sipp")
    if server is None and sipp is None:
        return "CPU steal not measured (no /proc/stat, no taskset or cores unknown)."
    return (f"CPU steal (time the hypervisor gave the cores to others): server core(s) "
            f"{_cell(server)} %, SIPp core {_cell(sipp)} %.")


NODE_COLUMNS = (  # (row key, markdown header) of the per-node table (--nodes > 1)
    ("node", "node"),
    ("cpu_core", "core"),
    ("placed", "placed"),
    ("completed", "completed"),
    ("max_calls", "calls up"),
    ("cdrs", "CDRs"),
    ("cdrs_with_agent", "CDRs with an agent"),
    ("cpu_s", "CPU s"),
    ("cpu_pct_of_core", "CPU %"),
    ("rss_kib_peak", "RSS KiB"),
    ("media_clock_late_p99_ms", "clock late p99 ms"),
)


def node_lines(result: dict[str, Any]) -> list[str]:
    """With several nodes: one table row per node and redis-server's CPU; nothing otherwise."""
    nodes = result.get("nodes")
    if not nodes:
        return []
    lines = ["", "| " + " | ".join(h for _, h in NODE_COLUMNS) + " |",
             "|" + "|".join("---" if k == "node" else "---:" for k, _ in NODE_COLUMNS) + "|"]
    for row in nodes:
        lines.append("| " + " | ".join(_cell(row.get(k)) for k, _ in NODE_COLUMNS) + " |")
    lines += ["", f"Router: {_cell(result.get('router'))}. redis-server: "
              f"{_cell(result.get('redis_cpu_s'))} CPU s, not in the servers' CPU above "
              f"({_cell(result.get('cpu_s_per_call_with_redis'))} CPU s/call with it).", ""]
    return lines


def write_png(path: Path, rows: Sequence[dict[str, Any]]) -> str | None:
    """Load against failures and latency, one x position per step. Returns why no PNG was
    written (matplotlib missing), or None when it was."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return f"no report.png: matplotlib is not installed ({NO_PNG_HINT})"
    x = list(range(len(rows)))
    labels = [f"step {r['step']}\n{r['offered_concurrency']} / {r['offered_cps']:g} cps"
              for r in rows]
    fig, (load, lat) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True)
    width = 0.38
    load.bar([i - width / 2 for i in x], [r["calls_up_peak"] for r in rows], width,
             color="#4c72b0", label="calls up (peak)")
    load.bar([i + width / 2 for i in x], [r["failed"] for r in rows], width,
             color="#c44e52", label="failed calls")
    load.set_ylabel("calls")
    load.set_title("switchboard bench: load against failures and latency")
    load.legend(loc="upper left")
    for key, label, style in (("pdd_p99_ms", "PDD p99", "o-"), ("tta_p99_ms", "TTA p99", "s-"),
                              ("media_clock_late_p99_ms", "media clock late p99", "^:")):
        lat.plot(x, [_nan(r.get(key)) for r in rows], style, label=label)
    lat.set_ylabel("ms")
    lat.set_ylim(bottom=0)
    late = [_nan(r.get("rtp_late_pct")) for r in rows]
    if not all(math.isnan(v) for v in late):
        pct = lat.twinx()
        pct.plot(x, late, "d--", color="#8172b2", label="RTP late frames %")
        pct.set_ylabel("late frames % (capture)")
        pct.set_ylim(0, max(1.0, max(v for v in late if not math.isnan(v)) * 1.2))
        pct.legend(loc="upper right")
    lat.legend(loc="upper left")
    lat.set_xticks(x, labels)
    lat.set_xlabel("step (offered concurrent calls / offered cps)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


def write_report(directory: Path, result: dict[str, Any]) -> str | None:
    """report.json (everything), report.md and report.png; returns why the PNG is missing."""
    (directory / "report.json").write_text(json.dumps(result, indent=2) + "\n")
    (directory / "report.md").write_text(markdown(result))
    return write_png(directory / "report.png", result.get("steps", []))
