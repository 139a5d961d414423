"""One inbound call: SIP dialog + RTP session + the IVR flow run that drives them.

`Call` is the IVR's driver: it executes the commands a `FlowRun` yields (play,
collect digits, HTTP, queue, hang up) on the real media session and feeds back the
results. The digit timing itself lives in `ivr.digits.DigitCollector`, shared with
the offline simulator, so a flow behaves the same in `switchboard flow test`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ivr.commands import (
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
from ivr.digits import DigitCollector
from ivr.interpreter import FlowRun
from ivr.model import Flow
from media.engine import EngineSession
from media.sdp import Negotiated
from media.session import RtpSession

from .cdr import iso

if TYPE_CHECKING:
    from .recording import CallRecording
    from .server import Server

log = logging.getLogger("switchboard.call")

PCI_TAIL = 0.3  # seconds a sensitive collect's pause outlasts it (the last tone's tail)


class Call:
    """Implements `media.session.MediaListener`; owned by `Server`."""

    def __init__(self, server: Server, handle: int, call_id: str, caller: str, did: str) -> None:
        self.server = server
        self.handle = handle
        self.call_id = call_id
        self.caller = caller
        self.did = did
        self.loop = asyncio.get_running_loop()
        self.started_at = time.time()
        self.answered_at: float | None = None
        self.ended_at: float | None = None
        self.end_reason: str | None = None
        self.flow: Flow | None = None
        self.run: FlowRun | None = None
        self.session: RtpSession | EngineSession | None = None
        self.port: int | None = None
        self.negotiated: Negotiated | None = None
        self.sdp_version = 1
        self.feature: str | None = None  # an agent feature code (*50, *51, *52)
        self.offer_sent = False  # delayed offer: our SDP went in the 200, the answer comes in the ACK
        self.queue: str | None = None
        self.agent: str | None = None
        self.bridged_at: float | None = None
        self._hold: list[tuple[bytes, ...]] = []
        self._entry_until = 0.0
        self._after_play: str | None = None  # feature-code calls hang up after their prompt
        self._command: Any = None
        self._collector: DigitCollector | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self.recording: CallRecording | None = None  # while the call is being recorded
        self.recording_id: str | None = None  # for the CDR, also after the recording ends
        self._pci_resume: asyncio.TimerHandle | None = None

    @property
    def ended(self) -> bool:
        return self.end_reason is not None

    # -- flow driving -------------------------------------------------------------------

    def start_flow(self, flow: Flow) -> None:
        self.flow = flow
        self.run = FlowRun(flow, {"caller": self.caller, "did": self.did},
                           flows=self.server.flows.get)
        self._execute(self.run.start())

    def _send(self, result: object) -> None:
        if self.ended or self.run is None:
            return
        try:
            command = self.run.send(result)
        except Exception:
            log.exception("event=flow_error call=%s flow=%s", self.call_id, self.flow and self.flow.name)
            self.hangup("flow_error")
            return
        self._execute(command)

    def _execute(self, command: Any) -> None:
        """Run one command; only GetTime is answered at once, the rest wait for the caller,
        the clock or the network and come back through `_send`."""
        while isinstance(command, GetTime) and not self.ended:
            command = self._step(datetime.now(UTC))
        if self.ended:
            return
        self._command = command
        self._pci(command)
        if isinstance(command, Play):
            self._play(command)
        elif isinstance(command, GetDigits):
            self._collect(command)
        elif isinstance(command, HttpRequest):
            self._task = self.loop.create_task(self._http(command))
        elif isinstance(command, EnterQueue):
            self._enter_queue(command)
        elif isinstance(command, Hangup):
            self.hangup(f"flow_hangup:{command.reason}" if command.reason else "flow_hangup")
        elif isinstance(command, RecordControl):
            self.loop.call_soon(self._send, None)
        else:
            log.error("event=flow_unknown_command call=%s command=%r", self.call_id, command)
            self.hangup("flow_error")

    def _pci(self, command: Any) -> None:
        """A sensitive collect pauses the recording until the flow moves on; a `record`
        node pauses/resumes it for the flow. Fails closed: an error leaves it paused."""
        rec = self.recording
        if rec is None:
            return
        try:
            if self._pci_resume is not None:
                self._pci_resume.cancel()
                self._pci_resume = None
            if isinstance(command, GetDigits) and command.sensitive:
                rec.pause("pci")
            elif "pci" in rec.reasons:
                # the last key's tone is still arriving when its digit is detected: resume
                # after it has ended, so no trace of sensitive input reaches the recording
                self._pci_resume = self.loop.call_later(PCI_TAIL, rec.resume, "pci")
            if isinstance(command, RecordControl):
                (rec.pause if command.action == "pause" else rec.resume)("flow")
        except Exception:
            log.exception("event=recording_pause_failed call=%s", self.call_id)
            rec.reasons.add("error")
            rec.writer.pause(self.loop.time())

    def _step(self, result: object) -> Any:
        assert self.run is not None
        return self.run.send(result)

    def _frames(self, prompts: tuple[str, ...]) -> list[tuple[bytes, ...]]:
        cache = self.server.prompts
        codec = self.session.codec if self.session else "PCMU"
        frames = []
        for name in prompts:
            try:
                frames.append(cache.frames(name, codec))
            except (FileNotFoundError, ValueError) as exc:
                log.error("event=prompt_missing call=%s prompt=%s error=%s", self.call_id, name, exc)
        return frames

    def _play(self, command: Play) -> None:
        assert self.session is not None
        frames = self._frames(command.prompts)
        if not frames:
            self.loop.call_soon(self._send, PlayResult(None))
            return
        self.session.play(frames)

    def _collect(self, command: GetDigits) -> None:
        assert self.session is not None
        frames = [] if command.typeahead else self._frames(command.prompts)
        now = self.loop.time()
        self._collector = DigitCollector(command.spec, now=now, prompt_playing=bool(frames),
                                         barge_in=command.barge_in, typeahead=command.typeahead)
        if self._collector.result is not None:
            self._finish_collect(self._collector.result)
            return
        if frames:
            self.session.play(frames)
        else:
            self.session.stop()
        self._arm_collector()

    def _arm_collector(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self._collector.next_deadline() if self._collector else None
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self._collector_timer)

    def _collector_timer(self) -> None:
        self._timer = None
        if self._collector is None:
            return
        result = self._collector.on_timer(self.loop.time())
        if result is not None:
            self._finish_collect(result)
        else:
            self._arm_collector()

    def _finish_collect(self, result: DigitsResult) -> None:
        self._collector = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.session is not None:
            self.session.stop()
        self._send(result)

    def _enter_queue(self, command: EnterQueue) -> None:
        """Join the ACD queue; the caller hears the entry prompts, then hold music."""
        assert self.session is not None
        self.queue = command.queue
        self._queue_recording(command.queue)
        log.info("event=queue_enter call=%s queue=%s priority=%d", self.call_id, command.queue,
                 command.priority)
        self._hold = self._frames((command.music or "music_on_hold", "please_hold"))
        self.session.play(self._frames(command.prompts), then_loop=self._hold)
        # announcements wait until the entry prompts have been heard in full
        self._entry_until = self.loop.time() + sum(
            self.server.prompts.duration(p) for p in command.prompts if self.server.prompts.exists(p))
        center = self.server.center
        if center is None or not center.enqueue(self, command):
            self.loop.call_soon(self.queue_result, "error")

    def _queue_recording(self, queue: str) -> None:
        """The queue's recording setting, when it has one, beats the DID's and the flow's."""
        recordings = self.server.recordings
        wanted = self.server.cfg.recording.queues.get(queue)
        if wanted is False and self.recording is not None:
            recordings.end(self, stopped=f"queue {queue} is not recorded")
        elif wanted and (self.recording is None or not self.recording.store):
            recordings.begin(self)
        stream = self.server.cfg.streams_queues.get(queue)
        if stream is not None and wanted is not False:
            from .recording import StreamConsumer

            recordings.attach(self, StreamConsumer(self, stream, queue))
        if self.recording is not None:
            self.recording.event("queued", queue=queue)

    # -- called by the contact center ---------------------------------------------------

    def connected(self, agent_id: str) -> None:
        """Bridged to an agent: the flow is done with this call."""
        self.agent = agent_id
        self.bridged_at = time.time()
        self._command = None
        if self.recording is not None:
            self.recording.event("bridged", agent=agent_id, queue=self.queue)

    def announce(self, prompts: tuple[str, ...]) -> None:
        """Position/wait announcement instead of the hold music, then the music again;
        never over the queue's entry prompts."""
        wait = self._entry_until - self.loop.time()
        if wait > 0:
            self.loop.call_later(wait, self.announce, prompts)
            return
        if self.session is not None and self.agent is None and not self.ended:
            self.session.play(self._frames(prompts), then_loop=self._hold)

    def queue_result(self, outcome: str, target: str | None = None) -> None:
        """The ACD let go of the call (timeout, empty, key): the flow continues, at `target`
        when the queue names a node (exit key, overflow to a node)."""
        if self.ended or not isinstance(self._command, EnterQueue):
            return
        if self.session is not None:
            self.session.stop()
        self._send(QueueResult(outcome, target))

    def play_then_hangup(self, prompts: tuple[str, ...], reason: str) -> None:
        """Feature codes: confirm with a prompt, then hang up."""
        assert self.session is not None
        self._after_play = reason
        self.session.play(self._frames(prompts))

    async def _http(self, command: HttpRequest) -> None:
        result = await self.server.http_client.request(command)
        self._task = None
        self._send(result if isinstance(result, HttpResult) else HttpResult(None, b"", "error"))

    # -- MediaListener -------------------------------------------------------------------

    def on_dtmf(self, digit: str, source: str) -> None:
        if self.ended:
            return
        self.server.stats["dtmf_" + source] += 1
        if self.recording is not None:
            self.recording.on_dtmf(digit, source)
        command = self._command
        if self._collector is not None:
            collector = self._collector
            was_playing = collector.prompt_playing
            result = collector.on_digit(digit, self.loop.time())
            if was_playing and collector.stop_prompt and self.session is not None:
                self.session.stop()
            if result is not None:
                self._finish_collect(result)
            else:
                self._arm_collector()
        elif isinstance(command, EnterQueue) and self.server.center is not None:
            self.server.center.caller_key(self, digit)
        elif isinstance(command, Play) and command.barge_in and self.session is not None:
            self.session.stop()
            self._command = None
            self._send(PlayResult(digit))
        # otherwise: no one is listening for keys (non-barge-in prompt, queue): dropped

    def on_play_done(self) -> None:
        if self.ended:
            return
        if self._after_play is not None:
            self.loop.call_soon(self.hangup, self._after_play)
            return
        if self._collector is not None:
            self._collector.prompt_finished(self.loop.time())
            self._arm_collector()
        elif isinstance(self._command, Play):
            self._command = None
            # outside the clock tick: the next command may start playing at once
            self.loop.call_soon(self._send, PlayResult(None))

    def on_rtp_timeout(self) -> None:
        log.warning("event=rtp_timeout call=%s", self.call_id)
        self.hangup("rtp_timeout")

    # -- life cycle ------------------------------------------------------------------------

    def hangup(self, reason: str) -> None:
        """We end the call (BYE, or a final response while still ringing)."""
        if self.ended:
            return
        self.server.ua_hangup(self.handle)
        self.finish(reason)

    def finish(self, reason: str) -> None:
        """The call is over, for whatever reason: free everything, write the CDR."""
        if self.ended:
            return
        self.end_reason = reason
        self.ended_at = time.time()
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None:
            self._task.cancel()
        self._collector = None
        self.server.release_call(self)
        log.info("event=call_end call=%s reason=%s duration=%.1f", self.call_id, reason,
                 self.ended_at - self.started_at)

    def collected_vars(self) -> dict[str, str]:
        """What the IVR collected (sensitive values masked), without the caller/DID seeds."""
        return _cdr_vars(self.run)

    def cdr(self) -> dict[str, Any]:
        run = self.run
        return {
            "call_id": self.call_id,
            "caller": self.caller,
            "did": self.did,
            "started_at": iso(self.started_at),
            "answered_at": iso(self.answered_at),
            "ended_at": iso(self.ended_at),
            "end_reason": self.end_reason,
            "flow": self.flow.name if self.flow else None,
            "path": list(run.path) if run else [],
            "vars": self.collected_vars(),
            "queue": self.queue,
            "agent": self.agent,
            "recording": self.recording_id,
            "bridged_at": iso(self.bridged_at),
            "flow_version": self.flow.version if self.flow else None,
            "codec": self.session.codec if self.session else None,
        }


def _cdr_vars(run: FlowRun | None) -> dict[str, str]:
    if run is None:
        return {}
    masked = dict(run.masked_variables())
    for key in ("caller", "did"):
        masked.pop(key, None)
    return masked
