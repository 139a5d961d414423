"""Best-effort stateless error responses for requests the parser refused (RFC 3261 §8.2, §21.4.1).

A request with a broken header still deserves its 400 (with the reason) when the
headers a response needs — Via, From, To, Call-ID, CSeq — can be found as text.
Responses are never answered; without a Via there is nowhere to answer.
"""

from __future__ import annotations

import re

_NEEDED = {
    "via": "Via", "v": "Via",
    "from": "From", "f": "From",
    "to": "To", "t": "To",
    "call-id": "Call-ID", "i": "Call-ID",
    "cseq": "CSeq",
}
_SAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def error_response_bytes(data: bytes, status: int, reason: str) -> bytes | None:
    text = data[:65535].decode("latin-1")
    head = re.split(r"\r?\n\r?\n", text, maxsplit=1)[0].lstrip("\r\n")
    lines = re.split(r"\r?\n", head)
    if not lines or lines[0].upper().startswith("SIP/"):
        return None
    fields: list[str] = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        canonical = _NEEDED.get(name.strip().lower())
        if sep and canonical:
            fields.append(f"{canonical}: {_SAFE.sub('', value.strip())}")
    if not any(f.startswith("Via:") for f in fields):
        return None
    phrase = _SAFE.sub("", reason)[:200] or "Bad Request"
    out = [f"SIP/2.0 {status} {phrase}", *fields, "Server: Switchboard", "Content-Length: 0", "", ""]
    return "\r\n".join(out).encode("latin-1", "replace")
