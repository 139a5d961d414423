"""The Switchboard server: the one place that wires signaling, media, IVR and storage.

SIP events from the user-agent core become `Call` objects; each call gets an RTP
session on a port from the bounded pool, ticked by the shared media clock, and runs
the flow its DID maps to. Flows reload on SIGHUP and on file change; calls keep the
version they started with.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
import signal
import time
from collections import Counter
from typing import Any

from aiohttp import web

from ivr.diagnostics import Diagnostic
from ivr.registry import FlowRegistry
from media.audio import PromptCache
from media.clock import LatenessHistogram, MediaClock
from media.dtmf import DtmfInfoError, parse_info
from media.engine import EngineClock, EngineSession, NativeMedia
from media.engine import available as native_media_available
from media.ports import PortPool, PortPoolExhausted
from media.sdp import SdpError, SdpNegotiationError, build_offer, negotiate, parse_answer
from media.session import RtpSession
from signaling.auth import DigestAuthenticator
from signaling.events import Peer
from signaling.ids import RandomIds
from signaling.registrar import MemoryBindingStore, Registrar
from signaling.registration import Registration
from signaling.transport import SipService
from signaling.useragent import (
    CallCancelled,
    CallConfirmed,
    CallEnded,
    Event,
    IncomingCall,
    InfoReceived,
    RegistrationChanged,
    ReInvite,
    UserAgent,
)

from .acdconfig import load_acd
from .call import Call
from .cdr import CdrWriter
from .center import PROMPT_BY_CODE, STATUS_BY_CODE, ContactCenter
from .cluster import Cluster
from .config import LOOPBACK_HOSTS, ConfigError, ServerConfig
from .desk import AgentDesk
from .history import CustomerHistory, customer_key
from .httpclient import FlowHttpClient
from .recording import Recordings

log = logging.getLogger("switchboard.server")

DTMF_INFO_TYPES = ("application/dtmf-relay", "application/dtmf")
_SAFE_USER = re.compile(r"[A-Za-z0-9+._-]{1,64}")
GC_PAUSE_LOGGED = 0.05  # seconds: a collector pass this long is logged


class Server:
    def __init__(self, cfg: ServerConfig) -> None:
        self.cfg = cfg
        self.stats: Counter[str] = Counter()
        self.calls: dict[int, Call] = {}
        self.prompts = PromptCache(cfg.prompt_dir)
        self.flows = FlowRegistry(cfg.flow_dir, prompt_exists=self.prompts.exists)
        self.ports = PortPool(*cfg.rtp_ports)
        self.http_client = FlowHttpClient()
        self.sip: SipService | None = None
        self.clock: MediaClock | None = None
        self.native: NativeMedia | None = None  # the C RTP plane, when compiled and chosen
        self.cdr: CdrWriter | None = None
        self._http_runner: web.AppRunner | None = None
        self._poll_task: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self.gc_pauses = LatenessHistogram()
        self.rtp_totals: Counter[str] = Counter()
        self.center: ContactCenter | None = None
        self.cluster: Cluster | None = None
        self.bindings: MemoryBindingStore = MemoryBindingStore()
        self.recordings = Recordings(cfg.recording, cfg.data_dir)
        self.recordings.consumer_factories.append(self._flow_stream)
        self.hooks: Any = None  # recorder.hooks.HookHost when analyzers are configured
        self._gc_started = 0.0
        self._gc_cpu = 0.0

    # -- start / stop --------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.cfg
        self.acd_settings = load_acd(cfg.agents_file, cfg.queues_file, cfg.realm)
        if self.acd_settings.demo_passwords and cfg.sip.host not in LOOPBACK_HOSTS:
            raise ConfigError([Diagnostic(
                str(cfg.agents_file), 1, 1,
                f"demo passwords are configured for agents "
                f"{', '.join(sorted(self.acd_settings.demo_passwords))}: refusing to listen on "
                f"{cfg.sip.host}; set real passwords (or HA1 values) first")])
        self._report(self.flows.load(), "flows_load")
        self._check_dids()
        self.prompts.preload(self._prompt_names(), cfg.codecs)
        self.cdr = CdrWriter(cfg.data_dir)
        self.desk = AgentDesk(set(self.acd_settings.agents))
        if cfg.store:
            await self._join_cluster(cfg.store)
        else:
            self.history = CustomerHistory(cfg.data_dir)
        if cfg.analytics:
            from recorder.hooks import HookHost, load_factories

            # a mailbox per analyzer holds up to a second of live audio of every call
            # the server may carry (2 legs x 10 chunks): a slow second of one analyzer
            # drops nothing, a stuck one holds at most that much memory
            self.hooks = HookHost(load_factories(cfg.analytics), self._analytics,
                                  loop=asyncio.get_running_loop(),
                                  queue_size=max(256, 20 * cfg.max_calls))
            self.recordings.consumer_factories.append(self._hook_consumer)
        self.clock = MediaClock()
        self.clock.start()
        self._start_media()
        await self.recordings.start(self.clock)
        local = {"UDP": (cfg.sdp_ip, cfg.sip.port), "TCP": (cfg.sdp_ip, cfg.sip.port)}
        ua = UserAgent(ids=RandomIds(), local=local, max_dialogs=cfg.max_calls,
                       registration=self._registration())
        self.sip = SipService(ua, self.on_sip_event)
        self.center = ContactCenter(self, self.acd_settings, self.cluster)
        if self.cluster is not None:
            await self.cluster.start()
        await self.sip.start(cfg.sip.host, cfg.sip.port, tcp=cfg.sip_tcp)
        transports = "udp,tcp" if cfg.sip_tcp else "udp"
        log.info("event=listening service=sip transports=%s address=%s", transports, cfg.sip)
        await self._start_http()
        log.info("event=listening service=rtp ports=%d-%d", *cfg.rtp_ports)
        log.info("event=ready config=%s data_dir=%s flows=%s dids=%s", cfg.source, cfg.data_dir,
                 ",".join(self.flows.names()), ",".join(f"{k}:{v}" for k, v in cfg.dids.items()))
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, self.reload_flows)
        except (NotImplementedError, RuntimeError):
            pass
        self._poll_task = loop.create_task(self._poll_flows())
        # what exists now lives as long as the process: keep it out of the collector's
        # scans, and collect young objects less often, so no tick waits for a long GC pass
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        gc.callbacks.append(self._gc_timer)

    async def _join_cluster(self, url: str) -> None:
        """Registrations, history and desktops shared through Redis (docs/cluster.md)."""
        from .cluster import Cluster
        from .replicas import ClusterBindingStore, ClusterHistory

        cluster = Cluster(url, self.cfg.node_id)
        await cluster.connect()
        loop = asyncio.get_running_loop()
        self.bindings = ClusterBindingStore(cluster, lambda: time.time() - loop.time())
        registered = await self.bindings.load()
        history = ClusterHistory(self.cfg.data_dir, cluster)
        entries = await history.load()
        self.history = history
        self.desk.relay = cluster.publish
        cluster.on("desk", lambda origin, b: self.desk.notify(b["agent"], b["event"], relay=False))
        cluster.on("sup", lambda origin, b: self.desk.broadcast(b["event"], relay=False))
        self.cluster = cluster
        log.info("event=cluster_state node=%s registrations=%d history=%d", cluster.node,
                 registered, entries)

    def reachable_agents(self) -> set[str]:
        """Agents with at least one unexpired binding."""
        now = asyncio.get_running_loop().time()
        return {u for u in self.bindings.users() if self.bindings.get(u, now)}

    def _flow_stream(self, rec: Any) -> Any:
        from .recording import StreamConsumer

        flow = rec.call.flow.name if rec.call.flow else None
        setting = self.cfg.streams_flows.get(flow or "")
        return StreamConsumer(rec.call, setting) if setting else None

    def _hook_consumer(self, rec: Any) -> Any:
        from .recording import HookConsumer

        return HookConsumer(self.hooks, rec)

    def _analytics(self, call_id: str, event: dict[str, Any]) -> None:
        """What an analyzer emitted (on the event loop): into the recording's timeline,
        the queue log, the agent's desktop and the supervisors' WebSocket."""
        self.recordings.add_timeline(call_id, event)
        rec = self.recordings.recording_of(call_id)  # analytics come from recorded calls
        call = rec.call if rec is not None else next(
            (c for c in self.calls.values() if c.call_id == call_id), None)
        agent = call.agent if call else None
        if self.center is not None:
            self.center.log_line(time.time(), call_id, call.queue if call else None, agent,
                                 "ANALYTICS", event)
        message = {"type": "analytics", "call_id": call_id, "agent": agent, "event": event}
        if agent:
            self.desk.notify(agent, dict(message))
        self.desk.broadcast(message)

    def _gc_timer(self, phase: str, info: dict[str, int]) -> None:
        """Collector pauses stall the event loop: measure them (reported in /api/health), and
        log each long one with its generation and CPU time (wall time above CPU time is
        time the thread waited for the core)."""
        if phase == "start":
            self._gc_started = time.perf_counter()
            self._gc_cpu = time.thread_time()
        else:
            pause = time.perf_counter() - self._gc_started
            self.gc_pauses.add(pause)
            if pause >= GC_PAUSE_LOGGED:
                log.info("event=gc_pause generation=%s ms=%.1f cpu_ms=%.1f collected=%s",
                         info.get("generation"), pause * 1000,
                         (time.thread_time() - self._gc_cpu) * 1000, info.get("collected"))

    def _registration(self) -> Registration | None:
        """Digest-authenticated REGISTER for the configured agents (none: 405 to REGISTER)."""
        creds = self.acd_settings.credentials
        if not creds:
            return None
        auth = DigestAuthenticator(self.cfg.realm, secret=os.urandom(32), lookup=creds.get,
                                   random_bytes=os.urandom,
                                   algorithms=self.cfg.digest_algorithms)
        offset = time.time() - asyncio.get_running_loop().time()
        return Registration(auth, Registrar(self.bindings), wall_offset=offset)

    async def _start_http(self) -> None:
        from .api import build_app

        self._http_runner = web.AppRunner(build_app(self), access_log=None)
        await self._http_runner.setup()
        site = web.TCPSite(self._http_runner, self.cfg.http.host, self.cfg.http.port)
        await site.start()
        log.info("event=listening service=http address=http://%s", self.cfg.http)

    async def stop(self) -> None:
        if self._gc_timer in gc.callbacks:
            gc.callbacks.remove(self._gc_timer)
        for call in list(self.calls.values()):
            call.hangup("server_shutdown")
        if self.sip is not None:
            self.sip.flush()
            await asyncio.sleep(0.05)  # let the BYEs leave
            self.sip.close()
        if self.clock is not None:
            self.clock.stop()
        if self.native is not None:
            self.native.stop()
        if self.center is not None:
            self.center.close()
        if self.cluster is not None:
            await self.cluster.stop()
        await self.recordings.stop()
        if self.hooks is not None:
            self.hooks.close()
        await self.desk.close()
        self.history.close()
        if self._poll_task is not None:
            self._poll_task.cancel()
        if self._http_runner is not None:
            await self._http_runner.cleanup()
        await self.http_client.close()
        if self.cdr is not None:
            self.cdr.close()
        self._stopped.set()

    # -- flows ---------------------------------------------------------------------------

    def _prompt_names(self) -> set[str]:
        names = {"music_on_hold", "please_hold"} | {f"digits/{d}" for d in "0123456789"}
        for flow_name in self.flows.names():
            for node in self.flows.get(flow_name).nodes.values():
                names.update(name for _, name in node.prompts())
        return {n for n in names if self.prompts.exists(n)}

    def _check_dids(self) -> None:
        for did, flow in self.cfg.dids.items():
            if flow not in self.flows.names():
                log.error("event=config_error did=%s flow=%s error=unknown_flow", did, flow)

    def reload_flows(self) -> None:
        diagnostics = self.flows.reload()
        self._report(diagnostics, "flows_reload")
        self.prompts.preload(self._prompt_names(), self.cfg.codecs)

    async def _poll_flows(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                if self.flows.changed_since_last_load():
                    self.reload_flows()
            except Exception:
                log.exception("event=flows_reload_error")

    def _report(self, diagnostics: list[Diagnostic], what: str) -> None:
        for diag in diagnostics:
            log.error("event=%s_error %s", what, diag)
        if not diagnostics:
            log.info("event=%s flows=%s", what, ",".join(self.flows.names()))

    # -- SIP events ----------------------------------------------------------------------

    def on_sip_event(self, event: Event) -> None:
        if isinstance(event, IncomingCall):
            self._incoming(event)
            return
        if isinstance(event, RegistrationChanged):
            self._registration_changed(event)
            return
        if self.center is not None and self.center.owns(event.handle):
            self._agent_leg_event(event)
            return
        call = self.calls.get(event.handle)
        if call is None:
            if isinstance(event, ReInvite | InfoReceived):
                self._respond(event.tx, 481)
            return
        if isinstance(event, CallConfirmed):
            self._confirmed(call, event)
        elif isinstance(event, CallCancelled):
            call.finish("caller_cancel")
        elif isinstance(event, CallEnded):
            call.finish("caller_hangup" if event.reason == "remote_bye" else event.reason)
        elif isinstance(event, ReInvite):
            self._reinvite(call, event)
        elif isinstance(event, InfoReceived):
            self._info(call, event)

    def _registration_changed(self, event: RegistrationChanged) -> None:
        log.info("event=agent_registration agent=%s kind=%s contact=%s", event.user, event.kind,
                 event.contact)
        if event.kind in ("reachable", "unreachable") and self.center is not None:
            self.center.agent_reachable(event.user, event.kind == "reachable")

    def _agent_leg_event(self, event: Event) -> None:
        """SIP on an agent's leg: offers' outcomes go to the ACD; hold/INFO are answered here."""
        assert self.center is not None
        leg = self.center.by_handle[event.handle]  # type: ignore[union-attr]
        if isinstance(event, ReInvite):
            self._reinvite_media(leg.session, leg.port, event)
        elif isinstance(event, InfoReceived):
            self._respond(event.tx, 200)
        else:
            self.center.on_sip(event)

    def _incoming(self, event: IncomingCall) -> None:
        call = Call(self, event.handle, event.call_id, event.caller, event.did)
        log.info("event=call_start call=%s caller=%s did=%s peer=%s:%d", call.call_id,
                 call.caller, call.did, event.peer.host, event.peer.port)
        if event.did in STATUS_BY_CODE:
            self._feature_code(call, event)
            return
        flow_name = self.cfg.dids.get(event.did)
        if flow_name is None or flow_name not in self.flows.names():
            self._reject(call, 404, "not_found")
            return
        self.calls[call.handle] = call
        call.flow = self.flows.get(flow_name)
        call.loop.create_task(self._setup(call, event.sdp))

    def _feature_code(self, call: Call, event: IncomingCall) -> None:
        """*50 ready, *51 not ready, *52 log out — from the agent's own registered phone only
        (the INVITE must come from an address the agent registered from)."""
        agent = call.caller
        sources = {b.source[1] for b in self.agent_bindings(agent)}
        if agent not in self.acd_settings.agents or event.peer.host not in sources:
            log.warning("event=feature_refused code=%s caller=%s ip=%s", event.did, agent,
                        event.peer.host)
            self._reject(call, 403, "feature_not_allowed")
            return
        call.feature = event.did
        self.calls[call.handle] = call
        call.loop.create_task(self._setup(call, event.sdp))

    async def _setup(self, call: Call, offer: bytes | None) -> None:
        """Port, socket, SDP answer, 180 then 200; then the flow starts."""
        try:
            port = await self._bind(call)
        except PortPoolExhausted:
            log.error("event=rtp_ports_exhausted call=%s", call.call_id)
            self._reject(call, 503, "no_rtp_port")
            return
        if call.ended:  # cancelled while we were binding
            return
        session = call.session
        assert session is not None and self.sip is not None
        try:
            if offer is not None:
                neg = negotiate(offer, local_ip=self.cfg.sdp_ip, local_port=port,
                                codecs=self.cfg.codecs, session_id=call.handle,
                                session_version=call.sdp_version)
                self._apply(call, neg)
                sdp = neg.answer
            else:
                sdp = build_offer(local_ip=self.cfg.sdp_ip, local_port=port, codecs=self.cfg.codecs,
                                  session_id=call.handle, session_version=call.sdp_version)
        except SdpNegotiationError as exc:
            log.warning("event=sdp_no_match call=%s error=%s", call.call_id, exc)
            self._reject(call, 488, "incompatible_media")
            return
        except SdpError as exc:
            log.warning("event=sdp_malformed call=%s error=%s", call.call_id, exc)
            self._reject(call, 400, "bad_sdp")
            return
        self.sip.ua.progress(call.handle, call.loop.time(), 180)
        self.sip.flush()
        delay = self.cfg.answer_delay.get(call.did, 0.0)
        if delay:
            await asyncio.sleep(delay)  # ring before answering (Asterisk: Ringing + Wait)
            if call.ended:
                return
        self.sip.ua.answer(call.handle, sdp, call.loop.time())
        self.sip.flush()
        call.answered_at = time.time()
        call.offer_sent = offer is None
        session.start_timeout()
        self.stats["calls_answered"] += 1
        if call.feature is not None:
            assert self.center is not None
            self.center.set_status(call.caller, STATUS_BY_CODE[call.feature], None)
            log.info("event=feature_code code=%s agent=%s", call.feature, call.caller)
            call.play_then_hangup((PROMPT_BY_CODE[call.feature],), "feature_code")
            return
        assert call.flow is not None
        store = self.cfg.recording.at_start(call.did, call.flow.name)
        if store or call.flow.name in self.cfg.streams_flows or self.cfg.analytics:
            self.recordings.begin(call, store=store)
        call.start_flow(call.flow)

    async def _bind(self, call: Call) -> int:
        port, session = await self.bind_rtp(call)
        call.port, call.session = port, session
        if call.ended:
            self.release_rtp(session, port)
            call.port, call.session = None, None
        return port

    def _start_media(self) -> None:
        """The native RTP plane when it is compiled, chosen (`media.engine`) and the media
        address is IPv4; else RTP runs in `RtpSession`s on the event loop."""
        if self.cfg.media_engine != "native" or not native_media_available():
            log.info("event=media_engine engine=python%s", " relay_jitter_ms=0 (native only)"
                     if self.cfg.relay_jitter_ms else "")
            return
        if ":" in self.cfg.sip.host:
            log.info("event=media_engine engine=python reason=ipv6")
            return
        self.native = NativeMedia(asyncio.get_running_loop(), priority=self.cfg.realtime_priority,
                                  nice=self.cfg.media_nice, slice_us=self.cfg.media_slice_us,
                                  relay_jitter_ms=self.cfg.relay_jitter_ms,
                                  coalesce_us=self.cfg.media_coalesce_us)
        self.native.start()
        self.native.yield_to_media(self.cfg.background_nice)
        clock = self.native.clock.refresh()
        log.info("event=media_engine engine=native realtime=%s slice_us=%d background_nice=%d "
                 "relay_jitter_ms=%d", "yes" if clock.realtime else "no",
                 self.native.slice_ns // 1000, self.native.background_nice,
                 self.cfg.relay_jitter_ms)

    @property
    def media_clock(self) -> MediaClock | EngineClock | None:
        """What paces outbound RTP: the native engine's clock, or the asyncio one."""
        return self.native.clock.refresh() if self.native is not None else self.clock

    async def bind_rtp(self, listener: Any) -> tuple[int, RtpSession | EngineSession]:
        """A socket on the next free RTP port, ticked by the media clock."""
        loop = asyncio.get_running_loop()
        for _ in range(8):
            port = self.ports.acquire()
            session: RtpSession | EngineSession
            try:
                if self.native is not None:
                    session = self.native.bind(listener, self.cfg.sip.host, port,
                                               timeout=self.cfg.rtp_timeout)
                    return port, session
                session = RtpSession(listener, port, timeout=self.cfg.rtp_timeout)
                await loop.create_datagram_endpoint(lambda s=session: s,  # type: ignore[misc]
                                                    local_addr=(self.cfg.sip.host, port))
            except OSError:
                self.ports.skip(port)
                continue
            assert self.clock is not None
            self.clock.add(session)
            return port, session
        raise PortPoolExhausted("no bindable RTP port")

    def release_rtp(self, session: RtpSession | EngineSession, port: int | None) -> None:
        for name in ("rx_packets", "tx_packets", "rx_bad", "rx_foreign", "rx_unknown_pt", "tx_dropped"):
            self.rtp_totals[name] += getattr(session, name)  # /metrics keeps ended calls' counts
        if self.clock is not None and isinstance(session, RtpSession):
            self.clock.discard(session)
        session.close()
        if port is not None:
            self.ports.release(port)

    def agent_bindings(self, agent_id: str) -> list[Any]:
        registration = self.sip.ua.registration if self.sip else None
        if registration is None:
            return []
        return registration.registrar.contacts(agent_id, asyncio.get_running_loop().time())

    def ua_invite(self, *, uri: str, peer: Peer, caller: str, to_user: str, sdp: bytes,
                  headers: list[tuple[str, str]]) -> int:
        assert self.sip is not None
        host, port = self.cfg.sdp_ip, self.cfg.sip.port
        user = caller if _SAFE_USER.fullmatch(caller or "") else "anonymous"
        handle = self.sip.ua.invite(uri=uri, peer=peer, from_uri=f"sip:{user}@{host}:{port}",
                                    to_uri=f"sip:{to_user}@{host}:{port}", sdp=sdp,
                                    now=asyncio.get_running_loop().time(), headers=headers)
        self.sip.flush()
        return handle

    def _apply(self, call: Call, neg: Any) -> None:
        session = call.session
        assert session is not None
        call.negotiated = neg
        session.set_codec(neg.codec, neg.payload_type, neg.te_payload_type)
        session.set_remote(neg.remote_ip, neg.remote_port)
        session.sending = neg.direction in ("sendrecv", "sendonly") and neg.remote_port != 0
        session.on_hold = neg.on_hold

    def _confirmed(self, call: Call, event: CallConfirmed) -> None:
        if call.offer_sent and event.sdp and call.session is not None:
            try:
                neg = parse_answer(event.sdp, self.cfg.codecs, 101)
                self._apply(call, neg)
            except SdpError as exc:
                log.warning("event=sdp_bad_answer call=%s error=%s", call.call_id, exc)
                call.hangup("bad_sdp")

    def _reinvite_media(self, session: RtpSession | EngineSession | None, port: int | None,
                        event: ReInvite) -> None:
        """Hold/resume from an agent's phone: answer on the same port (RFC 3264 §8)."""
        if session is None or event.sdp is None:
            self._respond(event.tx, 200)
            return
        try:
            neg = negotiate(event.sdp, local_ip=self.cfg.sdp_ip, local_port=port or 0,
                            codecs=self.cfg.codecs, session_id=port or 0,
                            session_version=int(time.time()))
        except SdpError:
            self._respond(event.tx, 488)
            return
        session.set_remote(neg.remote_ip, neg.remote_port)
        session.sending = neg.direction in ("sendrecv", "sendonly") and neg.remote_port != 0
        session.on_hold = neg.on_hold
        self._respond(event.tx, 200, neg.answer, "application/sdp")

    def _reinvite(self, call: Call, event: ReInvite) -> None:
        """Hold/resume and media changes (RFC 3264 §8); the same port, a new version."""
        if call.session is None or event.sdp is None:
            neg = call.negotiated
            body = neg.answer if neg is not None else b""
            self._respond(event.tx, 200, body, "application/sdp" if body else None)
            return
        call.sdp_version += 1
        try:
            neg = negotiate(event.sdp, local_ip=self.cfg.sdp_ip, local_port=call.port or 0,
                            codecs=self.cfg.codecs, session_id=call.handle,
                            session_version=call.sdp_version)
        except SdpNegotiationError:
            self._respond(event.tx, 488)
            return
        except SdpError:
            self._respond(event.tx, 400)
            return
        self._apply(call, neg)
        log.info("event=reinvite call=%s hold=%s direction=%s", call.call_id, neg.on_hold,
                 neg.direction)
        self._respond(event.tx, 200, neg.answer, "application/sdp")

    def _info(self, call: Call, event: InfoReceived) -> None:
        ctype = (event.content_type or "").lower()
        if ctype not in DTMF_INFO_TYPES:
            self._respond(event.tx, 415)
            return
        try:
            digit = parse_info(ctype, event.body)
        except DtmfInfoError:
            self._respond(event.tx, 400)
            return
        self._respond(event.tx, 200)
        call.on_dtmf(digit, "info")

    def _respond(self, tx: int, status: int, body: bytes = b"", ctype: str | None = None) -> None:
        assert self.sip is not None
        self.sip.ua.respond(tx, status, asyncio.get_running_loop().time(), body, ctype)
        self.sip.flush()

    def _reject(self, call: Call, status: int, reason: str) -> None:
        assert self.sip is not None
        self.sip.ua.reject(call.handle, status, call.loop.time())
        self.sip.flush()
        self.calls[call.handle] = call
        call.finish(reason)

    # -- called by Call --------------------------------------------------------------------

    def ua_hangup(self, handle: int) -> None:
        if self.sip is not None:
            self.sip.ua.hangup(handle, asyncio.get_running_loop().time())
            self.sip.flush()

    def release_call(self, call: Call) -> None:
        self.calls.pop(call.handle, None)
        if self.center is not None:
            self.center.caller_gone(call)
        self.recordings.end(call)  # after the queue log's last line, which names it
        record = call.cdr()  # before the session goes: the CDR names its codec
        if call.queue is not None:
            account = record["vars"].get("account")
            customer = customer_key(account, call.caller)
            if customer is not None:
                self.history.record_call(customer, record)
        if call.session is not None:
            self.release_rtp(call.session, call.port)
            call.session, call.port = None, None
        self.stats["calls_ended"] += 1
        if self.cdr is not None:
            try:
                self.cdr.write(record)
            except OSError:
                log.exception("event=cdr_write_failed call=%s", call.call_id)

    async def wait_stopped(self) -> None:
        await self._stopped.wait()
