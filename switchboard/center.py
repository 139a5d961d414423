"""The contact center: drives the sans-IO `AcdEngine` with real SIP and RTP.

The engine decides (who gets which call, RONA, wrap-up, announcements); this module
executes: an `Offer` becomes an INVITE to the agent's registered softphone carrying the
screen-pop headers, `Bridge` relays RTP between the caller's and the agent's sessions,
`Announce` plays position and wait prompts over the hold music, `ExitQueue` resumes
the caller's flow, and every `LogEvent` becomes a line of DATA_DIR/queue_log.jsonl.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from acd.actions import AgentChanged, Announce, Bridge, CancelOffer, ExitQueue, LogEvent, Offer
from acd.engine import AcdEngine
from acd.errors import AcdUsageError
from acd.model import Status
from ivr.commands import EnterQueue
from media.engine import EngineSession
from media.sdp import SdpError, build_offer, parse_answer
from media.session import RtpSession
from signaling.errors import SipError
from signaling.events import CallAnswered, CallEnded, CallFailed, CallProgress, Event, Peer
from signaling.uri import SipUri
from signaling.useragent import is_ip_literal

from .cdr import iso
from .history import customer_key

if TYPE_CHECKING:
    from .acdconfig import AcdSettings
    from .call import Call
    from .cluster import Cluster
    from .router import AcdRouter, RemoteEngine
    from .server import Server

log = logging.getLogger("switchboard.acd")

FAILURES = {486: "busy", 600: "busy", 603: "decline"}
CLAIM_GRACE = 2.0  # seconds a cluster claim outlives the offer's ring timeout
STATUS_BY_CODE = {"*50": Status.READY, "*51": Status.NOT_READY, "*52": Status.LOGGED_OUT}
PROMPT_BY_CODE = {"*50": "agent_ready", "*51": "agent_not_ready", "*52": "agent_logged_out"}


@dataclass(eq=False)
class AgentLeg:
    """The INVITE to one agent for one offer, and its RTP session."""

    offer_id: str
    agent_id: str
    call: Call
    handle: int = 0  # the contact that answered (or the only one)
    ringing: set[int] = field(default_factory=set)  # INVITEs still out, one per contact
    port: int | None = None
    session: RtpSession | EngineSession | None = None
    answered: bool = False
    cancelled: bool = False

    def on_dtmf(self, digit: str, source: str) -> None:
        pass  # the agent's keys are relayed to the caller by the bridge

    def on_play_done(self) -> None:
        pass

    def on_rtp_timeout(self) -> None:
        log.warning("event=rtp_timeout leg=agent agent=%s call=%s", self.agent_id, self.call.call_id)
        self.call.hangup("rtp_timeout")


def _contact_peer(contact: str, source: tuple[str, str, int]) -> Peer:
    """Where an offer goes: the registered Contact (RFC 3261 §10, §8.1.2); the address the
    REGISTER came from when the Contact names a host we would have to resolve."""
    transport, src_host, src_port = source
    try:
        uri = SipUri.parse(contact)
    except SipError:
        return Peer(transport.upper(), src_host, src_port)
    proto = (uri.param("transport") or transport).upper()
    if not is_ip_literal(uri.host):
        return Peer(proto, src_host, src_port)
    return Peer(proto, uri.host.strip("[]"), uri.port or 5060)


class ContactCenter:
    def __init__(self, server: Server, settings: AcdSettings,
                 cluster: Cluster | None = None) -> None:
        self.server = server
        self.settings = settings
        self.loop = asyncio.get_running_loop()
        self.cluster = cluster
        self.router: AcdRouter | None = None
        self.engine: AcdEngine | RemoteEngine
        if cluster is None:
            self.engine = AcdEngine(settings.queues, settings.agents,
                                    choose=lambda n: secrets.randbelow(n),
                                    ids=lambda: secrets.token_hex(6))
        else:  # the engine runs on the cluster's router node (docs/cluster.md)
            from .router import AcdRouter, RemoteEngine

            remote = RemoteEngine(cluster, settings, self._now, self.run)
            remote.on_resync = self._cancel_ringing
            self.engine = remote
            self.router = AcdRouter(cluster, settings, self._now, self.loop.call_at,
                                    self.log_line, server.reachable_agents)
            self.router.resync_local = remote.resync
        self.calls: dict[str, Call] = {}  # caller legs in the ACD, by call id
        self.legs: dict[str, AgentLeg] = {}  # by offer id
        self.by_handle: dict[int, AgentLeg] = {}
        self.bridged: dict[str, AgentLeg] = {}  # call id -> the agent leg it talks to
        self._timer: asyncio.TimerHandle | None = None
        server.cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self._qlog = os.open(server.cfg.data_dir / "queue_log.jsonl",
                             os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        os.close(self._qlog)

    # -- inputs ---------------------------------------------------------------------------

    def enqueue(self, call: Call, command: EnterQueue) -> bool:
        if command.queue not in self.settings.queues:
            log.error("event=queue_unknown call=%s queue=%s", call.call_id, command.queue)
            return False
        data: dict[str, Any] = dict(command.data)
        data.setdefault("caller", call.caller)
        data.setdefault("did", call.did)
        data.setdefault("vars", call.collected_vars())
        self.calls[call.call_id] = call
        self.engine.enqueue(call.call_id, command.queue, priority=command.priority,
                            skills=dict(command.skills), data=data, now=self._now())
        self.run()
        return True

    def caller_key(self, call: Call, digit: str) -> None:
        if call.call_id in self.calls and call.call_id not in self.bridged:
            self.engine.caller_key(call.call_id, digit, self._now())
            self.run()

    def caller_gone(self, call: Call) -> None:
        """The caller's leg ended (hang-up, timeout, shutdown)."""
        if self.calls.pop(call.call_id, None) is None:
            return
        leg = self.bridged.pop(call.call_id, None)
        now = self._now()
        try:
            if leg is not None:
                self.engine.call_ended(call.call_id, "caller", now)
                self.server.desk.notify(leg.agent_id, {"type": "ended", "call_id": call.call_id,
                                                       "by": "caller"})
                self.server.ua_hangup(leg.handle)
                self._end_leg(leg)
            else:
                self.engine.call_abandoned(call.call_id, now)
        except AcdUsageError as exc:
            log.warning("event=acd_state call=%s error=%s", call.call_id, exc)
        self.run()

    def set_status(self, agent_id: str, status: Status, reason: str | None = None) -> None:
        self.engine.agent_set_status(agent_id, status, reason, now=self._now())
        self.run()

    def agent_reachable(self, agent_id: str, reachable: bool) -> None:
        if agent_id in self.settings.agents:
            self.engine.agent_reachable(agent_id, reachable, self._now())
            self.run()

    def owns(self, handle: int) -> bool:
        return handle in self.by_handle

    def on_sip(self, event: Event) -> None:
        leg = self.by_handle.get(getattr(event, "handle", -1))
        if leg is None:
            return
        now = self._now()
        if isinstance(event, CallProgress):
            return
        if isinstance(event, CallAnswered):
            self._answered(leg, event, now)
        elif isinstance(event, CallFailed):
            self._failed(leg, event, now)
        elif isinstance(event, CallEnded):
            self._agent_hung_up(leg, now)
        self.run()

    # -- SIP outcomes of offers --------------------------------------------------------------

    def _answered(self, leg: AgentLeg, event: CallAnswered, now: float) -> None:
        leg.ringing.discard(event.handle)
        if leg.answered:
            # another of the agent's phones answered first: end this one (RFC 3261 §13.2.2.4)
            self.by_handle.pop(event.handle, None)
            self.server.ua_hangup(event.handle)
            return
        leg.handle = event.handle
        for other in list(leg.ringing):  # stop the agent's other phones ringing
            leg.ringing.discard(other)
            self.by_handle.pop(other, None)
            self.server.ua_hangup(other)
        if leg.cancelled or leg.offer_id not in self.legs or leg.session is None:
            self.server.ua_hangup(leg.handle)
            self._end_leg(leg)
            return
        try:
            neg = parse_answer(event.sdp or b"", self.server.cfg.codecs, 101)
        except SdpError as exc:
            log.warning("event=agent_bad_sdp agent=%s error=%s", leg.agent_id, exc)
            self.server.ua_hangup(leg.handle)
            self._end_leg(leg)
            self.engine.offer_failed(leg.offer_id, "error", now)
            return
        leg.session.set_codec(neg.codec, neg.payload_type, neg.te_payload_type)
        leg.session.set_remote(neg.remote_ip, neg.remote_port)
        leg.answered = True
        self._unclaim(leg)
        self.engine.offer_answered(leg.offer_id, now)

    def _failed(self, leg: AgentLeg, event: CallFailed, now: float) -> None:
        self.by_handle.pop(event.handle, None)
        leg.ringing.discard(event.handle)
        if leg.answered or leg.ringing:
            return  # another of the agent's phones answered or still rings
        self._release(leg)
        if leg.cancelled or leg.offer_id not in self.legs:
            self.legs.pop(leg.offer_id, None)
            return
        self.legs.pop(leg.offer_id, None)
        reason = FAILURES.get(event.status, "error")
        log.info("event=offer_failed agent=%s call=%s status=%d", leg.agent_id,
                 leg.call.call_id, event.status)
        self.engine.offer_failed(leg.offer_id, reason, now)

    def _agent_hung_up(self, leg: AgentLeg, now: float) -> None:
        call = leg.call
        self._end_leg(leg)
        if self.bridged.pop(call.call_id, None) is not None:
            self.calls.pop(call.call_id, None)
            self.engine.call_ended(call.call_id, "agent", now)
            self.server.desk.notify(leg.agent_id, {"type": "ended", "call_id": call.call_id,
                                                   "by": "agent"})
            call.hangup("agent_hangup")

    # -- actions ------------------------------------------------------------------------------

    def run(self) -> None:
        """Execute what the engine decided, then re-arm its one timer."""
        for action in self.engine.take_actions():
            try:
                self._execute(action)
            except Exception:
                log.exception("event=acd_action_failed action=%s", type(action).__name__)
        deadline = self.engine.next_deadline()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.engine.on_timer(self._now())
        self.run()

    def _execute(self, action: object) -> None:
        if isinstance(action, LogEvent):
            self._queue_log(action)
        elif isinstance(action, Offer):
            self.loop.create_task(self._offer(action, time.time()))
        elif isinstance(action, CancelOffer):
            self._cancel(action)
        elif isinstance(action, Bridge):
            self._bridge(action)
        elif isinstance(action, Announce):
            self._announce(action)
        elif isinstance(action, ExitQueue):
            self._exit(action)
        elif isinstance(action, AgentChanged):
            # every node of a cluster hears of it: each tells its own desktops
            self.server.desk.notify(action.agent_id, {
                "type": "state", "agent": action.agent_id, "status": action.status.value,
                "state": action.state.value, "reason": action.reason}, relay=False)
            log.info("event=agent_state agent=%s status=%s state=%s reason=%s", action.agent_id,
                     action.status.value, action.state.value, action.reason)

    async def _offer(self, offer: Offer, decided_at: float) -> None:
        call = self.calls.get(offer.call_id)
        bindings = self.server.agent_bindings(offer.agent_id)
        if call is None or not bindings:
            self.engine.offer_failed(offer.offer_id, "error", self._now())
            self.run()
            return
        if self.cluster is not None and not await self.cluster.claim(
                offer.agent_id, offer.offer_id, offer.ring_timeout + CLAIM_GRACE):
            log.warning("event=claim_refused call=%s agent=%s", call.call_id, offer.agent_id)
            self.engine.offer_failed(offer.offer_id, "error", self._now())
            self.run()
            return
        leg = AgentLeg(offer.offer_id, offer.agent_id, call)
        self.legs[offer.offer_id] = leg
        try:
            leg.port, leg.session = await self.server.bind_rtp(leg)
        except OSError:
            self.legs.pop(offer.offer_id, None)
            self._unclaim(leg)
            self.engine.offer_failed(offer.offer_id, "error", self._now())
            self.run()
            return
        if leg.cancelled:
            self._release(leg)
            self.legs.pop(offer.offer_id, None)
            return
        pop = self._pop_event(offer, call)
        pop["decided_at"] = decided_at  # when the ACD chose the agent (pop latency = at - this)
        desktops = await self.server.desk.send(offer.agent_id, pop)
        log.info("event=pop_sent call=%s agent=%s desktops=%d at=%.6f", call.call_id,
                 offer.agent_id, desktops, time.time())  # written out before the INVITE goes
        if leg.cancelled or offer.offer_id not in self.legs:
            self._release(leg)
            return
        cfg = self.server.cfg
        sdp = build_offer(local_ip=cfg.sdp_ip, local_port=leg.port, codecs=cfg.codecs,
                          session_id=int(leg.port), session_version=1)
        headers = self._pop_headers(offer, call)
        for binding in bindings:  # ring every phone the agent registered (parallel forking)
            peer = _contact_peer(binding.contact, binding.source)
            handle = self.server.ua_invite(uri=binding.contact, peer=peer, caller=call.caller,
                                           to_user=offer.agent_id, sdp=sdp, headers=headers)
            leg.ringing.add(handle)
            self.by_handle[handle] = leg
        leg.handle = min(leg.ringing)
        log.info("event=offer call=%s agent=%s queue=%s attempt=%d", call.call_id, offer.agent_id,
                 offer.queue, offer.attempt)

    def _pop_event(self, offer: Offer, call: Call) -> dict[str, Any]:
        """The screen pop for the agent's desktop: what the IVR collected and the history."""
        data = dict(offer.pop.get("data", {}))
        account = data.get("account")
        return {
            "type": "offer", "offer_id": offer.offer_id, "call_id": call.call_id,
            "agent": offer.agent_id, "queue": offer.queue, "caller": call.caller,
            "did": call.did, "account": account, "vars": data.get("vars", {}),
            "data": {k: v for k, v in data.items() if k != "vars"},
            "wait_seconds": offer.pop.get("waited"), "attempt": offer.attempt,
            "priority": offer.pop.get("priority"), "ring_timeout": offer.ring_timeout,
            "history": self.server.history.recent(customer_key(account, call.caller)),
        }

    def _pop_headers(self, offer: Offer, call: Call) -> list[tuple[str, str]]:
        """The screen pop as SIP headers on the INVITE to the agent (a public contract)."""
        http = self.server.cfg.http
        headers = [("X-Switchboard-Call-Id", call.call_id), ("X-Switchboard-Queue", offer.queue)]
        data = offer.pop.get("data", {})
        account = data.get("account") if isinstance(data, dict) else None
        if account:
            headers.append(("X-Switchboard-Account", str(account)))
        headers.append(("Call-Info", f"<http://{http}/api/calls/{call.call_id}>;purpose=info"))
        return headers

    def _cancel(self, action: CancelOffer) -> None:
        leg = self.legs.pop(action.offer_id, None)
        if leg is None:
            return
        leg.cancelled = True
        self._unclaim(leg)
        self.server.desk.notify(leg.agent_id, {"type": "offer_cancelled", "offer_id": leg.offer_id,
                                               "call_id": leg.call.call_id, "reason": action.reason})
        if leg.ringing:
            for handle in list(leg.ringing):
                self.server.ua_hangup(handle)  # CANCEL (or BYE if it was just answered)
        else:
            self._release(leg)

    def _bridge(self, action: Bridge) -> None:
        leg = self.legs.get(action.offer_id)
        call = self.calls.get(action.call_id)
        if leg is None or call is None or call.session is None or leg.session is None:
            return
        call.session.bridge(leg.session)
        self.bridged[call.call_id] = leg
        call.connected(action.agent_id)
        self.server.desk.notify(action.agent_id, {"type": "answered", "call_id": call.call_id,
                                                  "queue": action.queue})
        log.info("event=bridged call=%s agent=%s queue=%s", call.call_id, action.agent_id,
                 action.queue)

    def _announce(self, action: Announce) -> None:
        call = self.calls.get(action.call_id)
        if call is None or call.call_id in self.bridged:
            return
        prompts: list[str] = []
        if action.position is not None:
            prompts += ["your_position", *(f"digits/{d}" for d in str(action.position))]
        if action.ewt_seconds is not None:
            minutes = round(action.ewt_seconds / 60)
            if minutes < 1:
                prompts.append("less_than_a_minute")
            else:
                prompts += ["estimated_wait", *(f"digits/{d}" for d in str(minutes)), "minutes"]
        log.info("event=announce call=%s queue=%s position=%s ewt=%s", call.call_id, action.queue,
                 action.position, action.ewt_seconds)
        call.announce(tuple(prompts))

    def _exit(self, action: ExitQueue) -> None:
        call = self.calls.pop(action.call_id, None)
        if call is not None:
            log.info("event=queue_exit call=%s queue=%s reason=%s", call.call_id, action.queue,
                     action.reason)
            target = action.target[len("node:"):] if action.target and \
                action.target.startswith("node:") else action.target
            call.queue_result(action.reason, target)

    def _queue_log(self, event: LogEvent) -> None:
        self.log_line(event.time + self._wall_offset(), event.call_id, event.queue, event.agent,
                      event.event, dict(event.data))

    def log_line(self, wall: float, call_id: str | None, queue: str | None, agent: str | None,
                 event: str, data: dict[str, Any]) -> None:
        """One queue_log.jsonl line (docs/acd.md); names the call's recording if any."""
        record = {"time": iso(wall), "call_id": call_id or None, "queue": queue or None,
                  "agent": agent or None, "event": event, "data": data}
        rec = self.server.recordings.get(call_id) if call_id else None
        if rec is not None and rec.store:
            record["recording"] = rec.id
        line = json.dumps(record, separators=(",", ":"), default=str) + "\n"
        os.write(self._qlog, line.encode())

    # -- helpers ------------------------------------------------------------------------------

    def _end_leg(self, leg: AgentLeg) -> None:
        self.by_handle.pop(leg.handle, None)
        for handle in leg.ringing:
            self.by_handle.pop(handle, None)
        self.legs.pop(leg.offer_id, None)
        self._release(leg)

    def _unclaim(self, leg: AgentLeg) -> None:
        if self.cluster is not None:
            self.cluster.release(leg.agent_id, leg.offer_id)

    def _cancel_ringing(self) -> None:
        """A new router knows nothing of the offers the old one made: stop their ringing
        (the calls go back to it and are offered again)."""
        for leg in [leg for leg in self.legs.values() if not leg.answered]:
            self._cancel(CancelOffer(leg.offer_id, leg.call.call_id, leg.agent_id, "resync"))

    def _release(self, leg: AgentLeg) -> None:
        self._unclaim(leg)
        if leg.session is not None:
            self.server.release_rtp(leg.session, leg.port)
            leg.session, leg.port = None, None

    def _now(self) -> float:
        return self.loop.time()

    def _wall_offset(self) -> float:
        return time.time() - self.loop.time()

    def stats(self) -> dict[str, Any]:
        now = self._now()
        out = {}
        for name in self.settings.queues:
            s = self.engine.stats(name, now)
            out[name] = {k: (v.value if hasattr(v, "value") else v) for k, v in vars(s).items()}
        return out
