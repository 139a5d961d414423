"""SDP (RFC 4566) parsing and serialisation, and RFC 3264 offer/answer for G.711 audio.

The parser keeps what it does not understand: unknown line types are skipped,
unknown attributes are kept verbatim. It is tolerant of bare LF line ends and
trailing whitespace (seen from several softphones) but refuses input that is not
SDP at all with `SdpError`, whose message the SIP layer puts in a 400 reason.
Negotiation failures raise `SdpNegotiationError` (the SIP layer answers 488).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "MediaDescription",
    "Negotiated",
    "SdpError",
    "SdpNegotiationError",
    "SessionDescription",
    "build_offer",
    "negotiate",
    "parse_answer",
]

Attributes = tuple[tuple[str, "str | None"], ...]

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
SUPPORTED_CODECS = ("PCMU", "PCMA")
ACCEPTED_PTIMES = (10, 20, 30, 40, 60)
DEFAULT_PTIME = 20
HOLD_ADDRESSES = ("0.0.0.0", "::")

# RFC 3551 §6 Table 4: static audio payload types used when no a=rtpmap is given.
STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("PCMU", 8000, 1),
    3: ("GSM", 8000, 1),
    4: ("G723", 8000, 1),
    5: ("DVI4", 8000, 1),
    6: ("DVI4", 16000, 1),
    7: ("LPC", 8000, 1),
    8: ("PCMA", 8000, 1),
    9: ("G722", 8000, 1),
    10: ("L16", 44100, 2),
    11: ("L16", 44100, 1),
    12: ("QCELP", 8000, 1),
    13: ("CN", 8000, 1),
    14: ("MPA", 90000, 1),
    15: ("G728", 8000, 1),
    16: ("DVI4", 11025, 1),
    17: ("DVI4", 22050, 1),
    18: ("G729", 8000, 1),
}

# RFC 3264 §6: the answerer reverses the offered direction.
_ANSWER_DIRECTION = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}
# RFC 3264 §8.4 / RFC 2543: c=0.0.0.0 means "do not send to me".
_WITHOUT_RECEIVE = {
    "sendrecv": "sendonly",
    "sendonly": "sendonly",
    "recvonly": "inactive",
    "inactive": "inactive",
}


class SdpError(Exception):
    """Malformed SDP (RFC 4566); the SIP layer answers 400."""


class SdpNegotiationError(SdpError):
    """Well-formed SDP with nothing acceptable (RFC 3264 §6); the SIP layer answers 488."""


def _is_number(text: str) -> bool:
    """ASCII digits only, short enough that int() is cheap and cannot fail."""
    return 0 < len(text) <= 10 and text.isascii() and text.isdigit()


def _find_attribute(attributes: Attributes, name: str) -> str | None:
    for key, value in attributes:
        if key == name:
            return value
    return None


def _direction_of(attributes: Attributes) -> str | None:
    found = None
    for key, _ in attributes:
        if key in DIRECTIONS:
            found = key
    return found


@dataclass(frozen=True)
class MediaDescription:
    """One m= section (RFC 4566 §5.14) with its c= (§5.7) and a= (§5.13) lines.

    `connection` is the media-level c= address, or the session-level one when the
    section has none (RFC 4566 §5.7), already resolved by the parser.
    `session_attributes` carries the session-level a= lines for the fallbacks of
    `direction()` (RFC 3264 §5.1).
    """

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    connection: str | None
    attributes: Attributes
    session_attributes: Attributes = field(default=(), compare=False)

    def rtpmap(self) -> dict[int, tuple[str, int, int]]:
        """Payload type -> (encoding name, clock rate, channels) (RFC 4566 §6, RFC 3551 §6).

        Static payload types listed in the m= line without an a=rtpmap get their
        RFC 3551 meaning; malformed a=rtpmap lines are ignored.
        """
        result: dict[int, tuple[str, int, int]] = {}
        for fmt in self.formats:
            if _is_number(fmt) and int(fmt) in STATIC_PAYLOAD_TYPES:
                result[int(fmt)] = STATIC_PAYLOAD_TYPES[int(fmt)]
        for key, value in self.attributes:
            if key == "rtpmap" and value is not None:
                parsed = _parse_rtpmap(value)
                if parsed is not None:
                    result[parsed[0]] = parsed[1]
        return result

    def direction(self) -> str:
        """Media-level direction attribute, else session-level, else 'sendrecv' (RFC 3264 §5.1)."""
        return (
            _direction_of(self.attributes) or _direction_of(self.session_attributes) or "sendrecv"
        )

    def ptime(self) -> int | None:
        """The a=ptime value in ms (RFC 4566 §6), None when absent or not a number."""
        value = _find_attribute(self.attributes, "ptime")
        if value is None:
            value = _find_attribute(self.session_attributes, "ptime")
        if value is None:
            return None
        try:
            return int(float(value.strip()))
        except (ValueError, OverflowError):
            return None

    def fmtp(self, payload_type: int) -> str | None:
        """The a=fmtp parameters for a payload type (RFC 4566 §6), None when absent."""
        prefix = f"{payload_type} "
        for key, value in self.attributes:
            if key == "fmtp" and value is not None and value.startswith(prefix):
                return value[len(prefix) :].strip()
        return None


def _parse_rtpmap(value: str) -> tuple[int, tuple[str, int, int]] | None:
    """``<payload type> <encoding name>/<clock rate>[/<channels>]`` or None if malformed."""
    pt_text, _, encoding = value.strip().partition(" ")
    parts = encoding.strip().split("/")
    if not _is_number(pt_text) or len(parts) not in (2, 3) or not parts[0]:
        return None
    if not _is_number(parts[1]) or (len(parts) == 3 and not _is_number(parts[2])):
        return None
    channels = int(parts[2]) if len(parts) == 3 else 1
    return int(pt_text), (parts[0], int(parts[1]), channels)


@dataclass(frozen=True)
class SessionDescription:
    """A parsed session description (RFC 4566 §5)."""

    origin: str
    session_name: str
    connection: str | None
    attributes: Attributes
    media: tuple[MediaDescription, ...]

    @classmethod
    def parse(cls, data: bytes) -> SessionDescription:
        """Parse SDP bytes; raises `SdpError` naming the offending line."""
        return _Parser().run(data)

    def serialize(self) -> bytes:
        """Render back to SDP with CRLF line ends (RFC 4566 §5: v o s c t a, then m sections)."""
        lines = ["v=0", f"o={self.origin}", f"s={self.session_name or '-'}"]
        if self.connection is not None:
            lines.append(f"c={_connection_line(self.connection)}")
        lines.append("t=0 0")
        lines.extend(_attribute_lines(self.attributes))
        for m in self.media:
            lines.append(f"m={m.media} {m.port} {m.proto} {' '.join(m.formats)}".rstrip())
            if m.connection is not None and m.connection != self.connection:
                lines.append(f"c={_connection_line(m.connection)}")
            lines.extend(_attribute_lines(m.attributes))
        return ("\r\n".join(lines) + "\r\n").encode()


def _connection_line(address: str) -> str:
    return f"IN {'IP6' if ':' in address else 'IP4'} {address}"


def _attribute_lines(attributes: Attributes) -> list[str]:
    return [f"a={k}" if v is None else f"a={k}:{v}" for k, v in attributes]


class _Parser:
    """Line-by-line RFC 4566 §5 parser; one instance per parse call."""

    def __init__(self) -> None:
        self.origin: str | None = None
        self.session_name = ""
        self.connection: str | None = None
        self.attributes: list[tuple[str, str | None]] = []
        self.media: list[tuple[str, int, str, tuple[str, ...]]] = []
        self.media_connection: list[str | None] = []
        self.media_attributes: list[list[tuple[str, str | None]]] = []

    def run(self, data: bytes) -> SessionDescription:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise SdpError("SDP body must be bytes")
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SdpError(f"SDP is not valid UTF-8 at byte {exc.start}") from None
        lines = [line.rstrip() for line in text.split("\n")]
        lines = [line for line in lines if line]
        if not lines or lines[0].strip() != "v=0":
            raise SdpError("SDP must start with v=0")
        for number, line in enumerate(lines[1:], start=2):
            if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
                raise SdpError(f"SDP line {number} is not <type>=<value>: {line[:40]!r}")
            self.line(number, line[0], line[2:])
        if self.origin is None:
            raise SdpError("SDP has no o= line")
        return self.result()

    def line(self, number: int, kind: str, value: str) -> None:
        if kind == "m":
            self.media.append(_parse_media_line(number, value))
            self.media_connection.append(None)
            self.media_attributes.append([])
        elif kind == "c":
            address = _parse_connection(number, value)
            if self.media:
                self.media_connection[-1] = address
            else:
                self.connection = address
        elif kind == "a":
            name, sep, attr_value = value.partition(":")
            attr = (name.strip(), attr_value.strip() if sep else None)
            (self.media_attributes[-1] if self.media else self.attributes).append(attr)
        elif kind == "o" and not self.media:
            if len(value.split()) != 6:
                raise SdpError(f"SDP line {number}: o= needs 6 fields: {value[:60]!r}")
            self.origin = value.strip()
        elif kind == "s" and not self.media:
            self.session_name = value.strip()
        # Other types (t, b, k, i, u, e, p, z, r and unknown letters) carry nothing we use.

    def result(self) -> SessionDescription:
        session_attributes = tuple(self.attributes)
        media = tuple(
            MediaDescription(
                media=kind,
                port=port,
                proto=proto,
                formats=formats,
                connection=conn if conn is not None else self.connection,
                attributes=tuple(attrs),
                session_attributes=session_attributes,
            )
            for (kind, port, proto, formats), conn, attrs in zip(
                self.media, self.media_connection, self.media_attributes, strict=True
            )
        )
        return SessionDescription(
            origin=self.origin or "",
            session_name=self.session_name,
            connection=self.connection,
            attributes=session_attributes,
            media=media,
        )


def _parse_media_line(number: int, value: str) -> tuple[str, int, str, tuple[str, ...]]:
    """``m=<media> <port>[/<number of ports>] <proto> <fmt> ...`` (RFC 4566 §5.14)."""
    fields = value.split()
    if len(fields) < 3:
        raise SdpError(f"SDP line {number}: m= needs media, port and proto: {value[:60]!r}")
    port_text = fields[1].split("/", 1)[0]
    if not _is_number(port_text) or int(port_text) > 65535:
        raise SdpError(f"SDP line {number}: bad port in m= line: {fields[1][:20]!r}")
    return fields[0], int(port_text), fields[2], tuple(fields[3:])


def _parse_connection(number: int, value: str) -> str:
    """``c=IN IP4 <address>[/<ttl>]`` (RFC 4566 §5.7); returns the address."""
    fields = value.split()
    if len(fields) != 3 or fields[0] != "IN" or fields[1] not in ("IP4", "IP6"):
        raise SdpError(f"SDP line {number}: bad c= line: {value[:60]!r}")
    return fields[2].split("/", 1)[0]


@dataclass(frozen=True)
class Negotiated:
    """Outcome of an offer/answer exchange for the one audio stream we use."""

    codec: str
    payload_type: int
    te_payload_type: int | None
    ptime: int
    remote_ip: str
    remote_port: int
    direction: str
    on_hold: bool
    answer: bytes


def _check_codecs(codecs: Sequence[str]) -> tuple[str, ...]:
    if isinstance(codecs, str):
        raise ValueError("codecs must be a sequence of codec names, not a string")
    result = tuple(codecs)
    unknown = [c for c in result if c not in SUPPORTED_CODECS]
    if unknown or not result:
        raise ValueError(f"codecs must be a non-empty subset of {SUPPORTED_CODECS}: {result}")
    return result


def _choose_codec(m: MediaDescription, codecs: tuple[str, ...]) -> tuple[str, int] | None:
    """First format of the m= line (sender's preference, RFC 3264 §6.1) that we support."""
    rtpmap = m.rtpmap()
    for fmt in m.formats:
        if not _is_number(fmt):
            continue
        entry = rtpmap.get(int(fmt))
        if entry is None:
            continue
        name, rate, channels = entry
        if name.upper() in codecs and rate == 8000 and channels == 1:
            return name.upper(), int(fmt)
    return None


def _telephone_event(m: MediaDescription) -> int | None:
    """Payload type of telephone-event/8000 (RFC 4733 §7.1.1) in the m= line, if any."""
    rtpmap = m.rtpmap()
    for fmt in m.formats:
        if _is_number(fmt):
            entry = rtpmap.get(int(fmt))
            if entry is not None and entry[0].lower() == "telephone-event" and entry[1] == 8000:
                return int(fmt)
    return None


def _usable_ptime(m: MediaDescription) -> int:
    ptime = m.ptime()
    return ptime if ptime in ACCEPTED_PTIMES else DEFAULT_PTIME


def _is_usable_audio(m: MediaDescription) -> bool:
    return m.media == "audio" and m.port != 0 and m.proto.upper() == "RTP/AVP"


def _session_header(local_ip: str, session_id: int, session_version: int) -> list[str]:
    conn = _connection_line(local_ip)
    return [
        "v=0",
        f"o=switchboard {session_id} {session_version} {conn}",
        "s=switchboard",
        f"c={conn}",
        "t=0 0",
    ]


def _audio_section(
    port: int,
    codecs: Sequence[tuple[str, int]],
    te_payload_type: int | None,
    ptime: int,
    direction: str,
) -> list[str]:
    """m=audio section lines (RFC 4566 §5.14, §6) with rtpmap/fmtp/ptime/direction."""
    pts = [str(pt) for _, pt in codecs]
    if te_payload_type is not None:
        pts.append(str(te_payload_type))
    lines = [f"m=audio {port} RTP/AVP {' '.join(pts)}"]
    lines.extend(f"a=rtpmap:{pt} {name}/8000" for name, pt in codecs)
    if te_payload_type is not None:
        lines.append(f"a=rtpmap:{te_payload_type} telephone-event/8000")
        lines.append(f"a=fmtp:{te_payload_type} 0-16")
    lines.append(f"a=ptime:{ptime}")
    lines.append(f"a={direction}")
    return lines


def _rejected_section(m: MediaDescription) -> list[str]:
    """A refused stream: same media and proto, port 0, offered formats (RFC 3264 §6)."""
    formats = " ".join(m.formats) if m.formats else "0"
    return [f"m={m.media} 0 {m.proto} {formats}"]


def _pick_stream(
    sdp: SessionDescription, codecs: tuple[str, ...]
) -> tuple[int, MediaDescription, str, int]:
    for index, m in enumerate(sdp.media):
        if not _is_usable_audio(m):
            continue
        choice = _choose_codec(m, codecs)
        if choice is not None:
            return index, m, choice[0], choice[1]
    raise SdpNegotiationError(_no_match_reason(sdp, codecs))


def _no_match_reason(sdp: SessionDescription, codecs: tuple[str, ...]) -> str:
    audio = [m for m in sdp.media if m.media == "audio" and m.port != 0]
    if not audio:
        return "no active audio stream offered"
    if not any(m.proto.upper() == "RTP/AVP" for m in audio):
        return f"unsupported transport {audio[0].proto} (only RTP/AVP)"
    return f"no common codec: offered {', '.join(audio[0].formats)}, supported {', '.join(codecs)}"


def negotiate(
    offer: bytes | SessionDescription,
    *,
    local_ip: str,
    local_port: int,
    codecs: Sequence[str] = SUPPORTED_CODECS,
    session_id: int,
    session_version: int,
) -> Negotiated:
    """Answer an offer (RFC 3264 §6, §6.1).

    Accepts the first audio m= line on RTP/AVP with a non-zero port and a codec in
    `codecs` (picked in the offerer's order), echoing the offered payload types for
    the codec and telephone-event. The answer has as many m= lines as the offer,
    in order; all others are refused with port 0. Old-style hold (c=0.0.0.0,
    RFC 3264 §8.4) is treated as the offerer not wanting to receive.
    """
    wanted = _check_codecs(codecs)
    sdp = offer if isinstance(offer, SessionDescription) else SessionDescription.parse(offer)
    index, chosen, codec, pt = _pick_stream(sdp, wanted)
    if chosen.connection is None:
        raise SdpError("no c= line for the audio stream")
    te = _telephone_event(chosen)
    ptime = _usable_ptime(chosen)
    offered = chosen.direction()
    held_by_address = chosen.connection in HOLD_ADDRESSES
    if held_by_address:
        offered = _WITHOUT_RECEIVE[offered]
    direction = _ANSWER_DIRECTION[offered]
    lines = _session_header(local_ip, session_id, session_version)
    for i, m in enumerate(sdp.media):
        if i == index:
            lines.extend(_audio_section(local_port, [(codec, pt)], te, ptime, direction))
        else:
            lines.extend(_rejected_section(m))
    return Negotiated(
        codec=codec,
        payload_type=pt,
        te_payload_type=te,
        ptime=ptime,
        remote_ip=chosen.connection,
        remote_port=chosen.port,
        direction=direction,
        on_hold=held_by_address or offered in ("sendonly", "inactive"),
        answer=("\r\n".join(lines) + "\r\n").encode(),
    )


def build_offer(
    *,
    local_ip: str,
    local_port: int,
    codecs: Sequence[str] = SUPPORTED_CODECS,
    te_payload_type: int | None = 101,
    ptime: int = 20,
    session_id: int,
    session_version: int,
    direction: str = "sendrecv",
) -> bytes:
    """An offer with one audio stream (RFC 3264 §5, §5.1) in our codec preference order."""
    wanted = _check_codecs(codecs)
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}: {direction!r}")
    if te_payload_type is not None and not 96 <= te_payload_type <= 127:
        raise ValueError(
            f"telephone-event payload type must be dynamic (96..127): {te_payload_type}"
        )
    static = {"PCMU": 0, "PCMA": 8}
    lines = _session_header(local_ip, session_id, session_version)
    lines.extend(
        _audio_section(
            local_port, [(c, static[c]) for c in wanted], te_payload_type, ptime, direction
        )
    )
    return ("\r\n".join(lines) + "\r\n").encode()


def parse_answer(
    answer: bytes, offer_codecs: Sequence[str], te_payload_type: int | None
) -> Negotiated:
    """Read the answer to our offer (RFC 3264 §7).

    The codec is the first answered format that we offered; telephone-event is
    used only if we offered it and the answer kept it. `answer` of the result is b''.
    """
    wanted = _check_codecs(offer_codecs)
    sdp = SessionDescription.parse(answer)
    _, chosen, codec, pt = _pick_stream(sdp, wanted)
    if chosen.connection is None:
        raise SdpError("no c= line for the audio stream")
    te = _telephone_event(chosen) if te_payload_type is not None else None
    answered = chosen.direction()
    held_by_address = chosen.connection in HOLD_ADDRESSES
    if held_by_address:
        answered = _WITHOUT_RECEIVE[answered]
    return Negotiated(
        codec=codec,
        payload_type=pt,
        te_payload_type=te,
        ptime=_usable_ptime(chosen),
        remote_ip=chosen.connection,
        remote_port=chosen.port,
        direction=_ANSWER_DIRECTION[answered],
        on_hold=held_by_address or answered in ("sendonly", "inactive"),
        answer=b"",
    )
