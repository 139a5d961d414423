"""Prometheus metrics at `/metrics` (text exposition format 0.0.4), names prefixed `switchboard_`.

Everything is computed when scraped from counters the server keeps anyway; nothing here
runs on the packet path. RTP counters are summed over live sessions plus what ended
calls left behind.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .server import Server


def _line(name: str, value: float, labels: dict[str, str] | None = None) -> str:
    if labels:
        inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
        return f"switchboard_{name}{{{inner}}} {value:g}"
    return f"switchboard_{name} {value:g}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Doc:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def metric(self, name: str, kind: str, help_text: str,
               samples: list[tuple[dict[str, str] | None, float]]) -> None:
        self.lines.append(f"# HELP switchboard_{name} {help_text}")
        self.lines.append(f"# TYPE switchboard_{name} {kind}")
        self.lines.extend(_line(name, value, labels) for labels, value in samples)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render(server: Server) -> str:
    doc = _Doc()
    _calls(doc, server)
    _sip(doc, server)
    _rtp(doc, server)
    _acd(doc, server)
    _recording(doc, server)
    _runtime(doc, server)
    _cluster(doc, server)
    return doc.text()


def _calls(doc: _Doc, server: Server) -> None:
    states: Counter[str] = Counter({"ringing": 0, "ivr": 0, "queued": 0, "bridged": 0})
    for call in server.calls.values():
        if call.agent:
            states["bridged"] += 1
        elif call.queue:
            states["queued"] += 1
        elif call.answered_at:
            states["ivr"] += 1
        else:
            states["ringing"] += 1
    doc.metric("calls", "gauge", "Live calls by state.",
               [({"state": s}, n) for s, n in sorted(states.items())])
    doc.metric("calls_answered_total", "counter", "Calls answered since start.",
               [(None, server.stats["calls_answered"])])
    doc.metric("calls_ended_total", "counter", "Calls ended since start.",
               [(None, server.stats["calls_ended"])])


def _sip(doc: _Doc, server: Server) -> None:
    ua = server.sip.ua if server.sip else None
    doc.metric("sip_dialogs", "gauge", "SIP dialogs held.", [(None, ua.dialog_count if ua else 0)])
    doc.metric("sip_transactions", "gauge", "SIP transactions held.",
               [(None, ua.transaction_count if ua else 0)])
    stats = dict(ua.stats) if ua else {}
    doc.metric("sip_requests_received_total", "counter", "SIP requests received by method.",
               [({"method": k[3:]}, v) for k, v in sorted(stats.items())
                if k.startswith("rx_") and k[3:].isupper()])
    doc.metric("sip_malformed_total", "counter", "SIP messages refused as malformed.",
               [(None, stats.get("rx_malformed", 0))])


def _rtp(doc: _Doc, server: Server) -> None:
    totals: Counter[str] = Counter(server.rtp_totals)
    media = server.media_clock
    sessions = list(media.streams) if media else []
    for session in sessions:
        for name in ("rx_packets", "tx_packets", "rx_bad", "rx_foreign", "rx_unknown_pt", "tx_dropped"):
            totals[name] += getattr(session, name, 0)
    doc.metric("rtp_packets_received_total", "counter", "RTP packets received.",
               [(None, totals["rx_packets"])])
    doc.metric("rtp_packets_sent_total", "counter", "RTP packets sent.",
               [(None, totals["tx_packets"])])
    doc.metric("rtp_packets_dropped_total", "counter", "RTP packets dropped, by reason.",
               [({"reason": "malformed"}, totals["rx_bad"]),
                ({"reason": "foreign_source"}, totals["rx_foreign"]),
                ({"reason": "unknown_payload_type"}, totals["rx_unknown_pt"]),
                ({"reason": "send_failed"}, totals["tx_dropped"])])
    doc.metric("rtp_ports_in_use", "gauge", "RTP ports held.", [(None, server.ports.in_use)])
    doc.metric("media_clock_late_seconds", "gauge",
               "How late the media clock's sub-ticks started, by quantile since start.",
               [({"quantile": q}, (media.lateness.percentile(float(q) * 100) / 1000) if media else 0)
                for q in ("0.5", "0.99")])
    doc.metric("media_clock_skipped_frames_total", "counter",
               "Frames dropped after long stalls.", [(None, media.skipped if media else 0)])
    doc.metric("rtp_late_subticks_total", "counter",
               "Media clock sub-ticks (a quarter of the streams each) whose frames left more "
               "than 5 ms after their slot.", [(None, media.late_subticks if media else 0)])
    clock = server.clock
    doc.metric("event_loop_lag_seconds", "gauge",
               "How late the event loop ran a timer due now (the media clock's 5 ms timer), "
               "by quantile since start.",
               [({"quantile": q}, (clock.lateness.percentile(float(q) * 100) / 1000) if clock else 0)
                for q in ("0.5", "0.99", "1")])


def _acd(doc: _Doc, server: Server) -> None:
    center = server.center
    if center is None:
        return
    stats = center.stats()
    for field, kind, help_text in (
            ("waiting", "gauge", "Callers waiting in the queue."),
            ("longest_wait", "gauge", "Seconds the longest-waiting caller has waited."),
            ("offered", "counter", "Calls that entered the queue."),
            ("answered", "counter", "Calls answered by an agent."),
            ("abandoned", "counter", "Callers who hung up while queued.")):
        doc.metric(f"queue_{field}", kind, help_text,
                   [({"queue": q}, float(s.get(field) or 0)) for q, s in sorted(stats.items())])
    by_state: Counter[tuple[str, str]] = Counter()
    for agent_id in server.acd_settings.agents:
        changed = center.engine.agent_status(agent_id)
        by_state[(changed.status.value, changed.state.value)] += 1
    doc.metric("agents", "gauge", "Agents by status and state.",
               [({"status": st, "state": sy}, n) for (st, sy), n in sorted(by_state.items())])
    doc.metric("agents_registered", "gauge", "Agents with a registered phone.",
               [(None, len(server.reachable_agents()))])


def _recording(doc: _Doc, server: Server) -> None:
    rec = server.recordings
    doc.metric("recordings_active", "gauge", "Calls being recorded now.",
               [(None, sum(1 for r in rec.active.values() if r.store))])
    doc.metric("recordings_total", "counter", "Recordings by outcome since start.",
               [({"outcome": k}, float(rec.stats[k]))
                for k in ("started", "finished", "recovered", "deleted")])
    doc.metric("recording_io_errors_total", "counter", "Recording writes that failed.",
               [(None, float(rec.stats["io_errors"]))])
    doc.metric("recording_io_backlog", "gauge", "Recording disk jobs waiting for the I/O thread.",
               [(None, float(rec.io_backlog))])
    doc.metric("recording_dropped_packets_total", "counter",
               "RTP packets a recording refused (late, duplicate, undecodable).",
               [(None, float(rec.stats["dropped_packets"]))])
    hooks = server.hooks.stats() if server.hooks is not None else {}
    doc.metric("hook_events_total", "counter", "Items handed to analytics hooks, by outcome.",
               [({"analyzer": name, "outcome": outcome}, float(s.get(key, 0)))
                for name, s in sorted(hooks.items())
                for outcome, key in (("delivered", "delivered"), ("dropped", "dropped"),
                                     ("error", "errors"))])
    doc.metric("hook_queued", "gauge", "Items waiting in each analyzer's mailbox.",
               [({"analyzer": name}, float(s.get("queued", 0))) for name, s in sorted(hooks.items())])


def _runtime(doc: _Doc, server: Server) -> None:
    doc.metric("gc_pauses_total", "counter", "Garbage-collector passes.",
               [(None, server.gc_pauses.count)])
    doc.metric("gc_pause_seconds", "gauge", "Garbage-collector pause, by quantile since start.",
               [({"quantile": "0.99"}, server.gc_pauses.percentile(99) / 1000)])


def _cluster(doc: _Doc, server: Server) -> None:
    cluster = server.cluster
    if cluster is None:
        return
    doc.metric("cluster_router", "gauge", "1 on the node that runs the ACD router, else 0.",
               [({"node": cluster.node}, float(cluster.is_leader))])
    doc.metric("cluster_epoch", "gauge", "The router epoch this node last took or saw.",
               [(None, float(cluster.epoch))])
    doc.metric("cluster_messages_total", "counter", "Cluster messages and commands.",
               [({"direction": "sent"}, float(cluster.sent)),
                ({"direction": "received"}, float(cluster.received))])
    doc.metric("cluster_errors_total", "counter",
               "Failed Redis reads/writes and unusable messages.", [(None, float(cluster.errors))])


def auth_lines(counters: dict[str, int], sessions: int) -> str:
    """Login outcomes and open sessions of the HTTP API (the webauth state of the app)."""
    doc = _Doc()
    doc.metric("http_logins_total", "counter", "Logins to the HTTP API by outcome.",
               [({"outcome": k}, float(v)) for k, v in sorted(counters.items())])
    doc.metric("http_sessions", "gauge", "Open HTTP API sessions.", [(None, float(sessions))])
    return doc.text()
