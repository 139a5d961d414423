"""Recordings API: list and filter, fetch the WAV and the sidecar, delete; pause and
resume a live call's recording (PCI: an agent taking a card number)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .openapi import doc
from .webauth import principal, requires

if TYPE_CHECKING:
    from .call import Call
    from .recording import Recordings

SUMMARY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {k: {"type": ["string", "number", "boolean", "null"]} for k in (
        "id", "call_id", "did", "caller", "account", "flow", "queue", "agent", "started_at",
        "ended_at", "duration_s", "interrupted", "end_reason")},
}
STATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"call_id": {"type": "string"}, "recording_id": {"type": ["string", "null"]},
                   "recording": {"type": "boolean"}, "paused": {"type": "boolean"},
                   "reasons": {"type": "array", "items": {"type": "string"}}},
}


def _recordings(request: web.Request) -> Recordings:
    from .api import SERVER_KEY

    return request.app[SERVER_KEY].recordings


def _when(value: str | None, name: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise web.HTTPBadRequest(
            reason=f"{name} must be an ISO 8601 date or date-time, e.g. 2026-11-23") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _started(summary: dict[str, Any]) -> float:
    try:
        return datetime.fromisoformat(str(summary.get("started_at"))).timestamp()
    except ValueError:
        return 0.0


@requires("supervisor")
@doc("List finished recordings, newest first",
     params={"account": "only this account", "agent": "only this agent",
             "queue": "only this queue", "since": "started at or after (ISO 8601)",
             "until": "started before (ISO 8601)", "limit": "at most this many (1-1000, default 100)"},
     response={"type": "object", "properties": {"recordings": {"type": "array",
                                                              "items": SUMMARY_SCHEMA}}},
     errors=(400,))
async def list_recordings(request: web.Request) -> web.Response:
    query = request.query
    since, until = _when(query.get("since"), "since"), _when(query.get("until"), "until")
    try:
        limit = int(query.get("limit", "100"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 1000:
        raise web.HTTPBadRequest(reason="limit must be an integer from 1 to 1000")
    wanted = {key: query[key] for key in ("account", "agent", "queue") if query.get(key)}
    items = []
    for summary in _recordings(request).index.values():
        if any(str(summary.get(k)) != v for k, v in wanted.items()):
            continue
        started = _started(summary)
        if (since is not None and started < since) or (until is not None and started >= until):
            continue
        items.append(summary)
    items.sort(key=_started, reverse=True)
    return web.json_response({"recordings": [
        {k: v for k, v in s.items() if not k.startswith("_")} for s in items[:limit]]})


def _known(request: web.Request) -> str:
    recording_id = request.match_info["recording_id"]
    if _recordings(request).path(recording_id, "wav") is None:
        raise web.HTTPNotFound(reason=f"no recording {recording_id}")
    return recording_id


@requires("supervisor")
@doc("A recording's sidecar: call data, pauses, DTMF (masked while paused), events and the "
     "analytics timeline", response={"type": "object"}, errors=(404,))
async def get_recording(request: web.Request) -> web.Response:
    recording_id = _known(request)
    sidecar = _recordings(request).sidecar(recording_id)
    if sidecar is None:
        raise web.HTTPNotFound(reason=f"recording {recording_id} has no readable sidecar")
    return web.json_response(sidecar)


@requires("supervisor")
@doc("The recording as a stereo 8 kHz PCM16 WAV (left: caller, right: IVR then agent); "
     "byte ranges supported", errors=(404,), content_type="audio/wav")
async def get_audio(request: web.Request) -> web.StreamResponse:
    recording_id = _known(request)
    path = _recordings(request).path(recording_id, "wav")
    assert path is not None
    return web.FileResponse(path, headers={
        "Content-Type": "audio/wav",
        "Content-Disposition": f'inline; filename="{recording_id}.wav"'})


@requires("admin")
@doc("Delete a recording (WAV and sidecar)", status=204, errors=(404,))
async def delete_recording(request: web.Request) -> web.Response:
    recording_id = _known(request)
    _recordings(request).delete(recording_id)
    return web.Response(status=204)


def _call_for(request: web.Request) -> Call:
    """The live call, if the principal may control its recording: supervisors any call,
    agents only the call they are talking on."""
    from .api import SERVER_KEY

    who = principal(request)
    call_id = request.match_info["call_id"]
    for call in request.app[SERVER_KEY].calls.values():
        if call.call_id == call_id:
            if who.role == "agent" and call.agent != who.agent:
                raise web.HTTPForbidden(reason=f"agent {who.agent} is not on call {call_id}")
            return call
    raise web.HTTPNotFound(reason=f"no live call {call_id}")


def _state(call: Call) -> dict[str, Any]:
    rec = call.recording
    return {"call_id": call.call_id, "recording_id": call.recording_id,
            "recording": rec is not None, "paused": bool(rec and rec.paused),
            "reasons": sorted(rec.reasons) if rec else []}


@requires("agent")
@doc("Recording state of a live call", response=STATE_SCHEMA, errors=(403, 404))
async def call_recording(request: web.Request) -> web.Response:
    return web.json_response(_state(_call_for(request)))


@requires("agent")
@doc("Pause a live call's recording (e.g. while the agent takes a card number); the span "
     "becomes silence and DTMF in it is masked", response=STATE_SCHEMA, errors=(403, 404, 409))
async def pause_recording(request: web.Request) -> web.Response:
    return _control(request, "pause")


@requires("agent")
@doc("Resume a recording paused through the API (a pause by the flow stays until the flow "
     "ends it)", response=STATE_SCHEMA, errors=(403, 404, 409))
async def resume_recording(request: web.Request) -> web.Response:
    return _control(request, "resume")


def _control(request: web.Request, action: str) -> web.Response:
    call = _call_for(request)
    rec = call.recording
    if rec is None or not rec.store:
        raise web.HTTPConflict(reason=f"call {call.call_id} is not being recorded")
    (rec.pause if action == "pause" else rec.resume)("api")
    return web.json_response(_state(call))


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/recordings", list_recordings)
    r.add_get("/api/recordings/{recording_id}", get_recording)
    r.add_get("/api/recordings/{recording_id}/audio", get_audio)
    r.add_delete("/api/recordings/{recording_id}", delete_recording)
    r.add_get("/api/calls/{call_id}/recording", call_recording)
    r.add_post("/api/calls/{call_id}/recording/pause", pause_recording)
    r.add_post("/api/calls/{call_id}/recording/resume", resume_recording)
