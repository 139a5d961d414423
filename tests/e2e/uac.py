"""A small real-socket SIP caller for end-to-end cases SIPp scenarios do awkwardly:
in-band DTMF audio, hold/resume re-INVITEs, silence until the RTP timeout, delayed offer."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field

import numpy as np

from media.dtmf import dtmf_tone
from media.g711 import ulaw_encode
from signaling.message import SipMessage, parse_message


def sdp(port: int, *, te: bool = True, direction: str = "sendrecv", version: int = 1) -> bytes:
    fmts = "0 101" if te else "0"
    lines = ["v=0", f"o=uac 1 {version} IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
             f"m=audio {port} RTP/AVP {fmts}", "a=rtpmap:0 PCMU/8000"]
    if te:
        lines += ["a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16"]
    lines.append(f"a={direction}")
    return ("\r\n".join(lines) + "\r\n").encode()


@dataclass
class Uac:
    server_port: int
    did: str = "100"
    sip: socket.socket = field(init=False)
    rtp: socket.socket = field(init=False)
    call_id: str = field(init=False)
    cseq: int = 1
    to_tag: str = ""
    remote_rtp: tuple[str, int] | None = None
    seq: int = 0
    ts: int = 0
    received_rtp: int = 0

    def __post_init__(self) -> None:
        self.sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sip.bind(("127.0.0.1", 0))
        self.sip.settimeout(5)
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind(("127.0.0.1", 0))
        self.rtp.setblocking(False)
        self.call_id = f"uac-{os.urandom(6).hex()}"

    @property
    def sip_port(self) -> int:
        return int(self.sip.getsockname()[1])

    @property
    def rtp_port(self) -> int:
        return int(self.rtp.getsockname()[1])

    def close(self) -> None:
        self.sip.close()
        self.rtp.close()

    # -- SIP -------------------------------------------------------------------------------

    def _request(self, method: str, body: bytes = b"", cseq_method: str | None = None,
                 cseq: int | None = None) -> bytes:
        to = f"<sip:{self.did}@127.0.0.1>" + (f";tag={self.to_tag}" if self.to_tag else "")
        head = [
            f"{method} sip:{self.did}@127.0.0.1:{self.server_port} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.sip_port};branch=z9hG4bK{os.urandom(5).hex()};rport",
            "Max-Forwards: 70",
            f"From: <sip:uac@127.0.0.1:{self.sip_port}>;tag=uac1",
            f"To: {to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq if cseq is None else cseq} {cseq_method or method}",
            f"Contact: <sip:uac@127.0.0.1:{self.sip_port}>",
        ]
        if body:
            head.append("Content-Type: application/sdp")
        head.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(head) + "\r\n\r\n").encode() + body

    def send(self, data: bytes) -> None:
        self.sip.sendto(data, ("127.0.0.1", self.server_port))

    def recv(self, timeout: float = 5.0) -> SipMessage:
        self.sip.settimeout(timeout)
        data, _ = self.sip.recvfrom(65535)
        return parse_message(data)

    def final_response(self, timeout: float = 10.0) -> SipMessage:
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv(max(0.1, deadline - time.monotonic()))
            if not msg.is_request and (msg.status or 0) >= 200:
                return msg

    def invite(self, offer: bytes | None) -> SipMessage:
        self.send(self._request("INVITE", offer or b""))
        ok = self.final_response()
        self.to_tag = ok.to.tag or ""
        if ok.status == 200 and ok.body:
            self._learn_remote(ok.body)
        return ok

    def ack(self, body: bytes = b"", cseq: int | None = None) -> None:
        self.send(self._request("ACK", body, cseq=cseq))

    def reinvite(self, offer: bytes) -> SipMessage:
        self.cseq += 1
        self.send(self._request("INVITE", offer))
        ok = self.final_response()
        self.ack(cseq=self.cseq)
        return ok

    def bye(self) -> SipMessage:
        self.cseq += 1
        self.send(self._request("BYE"))
        return self.final_response()

    def answer_bye(self, timeout: float) -> SipMessage:
        """Wait for the server's BYE (draining RTP meanwhile) and answer 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.drain_rtp()
            try:
                msg = self.recv(0.2)
            except TimeoutError:
                continue
            if msg.is_request and msg.method == "BYE":
                ok = ("SIP/2.0 200 OK\r\n" + "\r\n".join(
                    f"{n}: {v}" for n, v in msg.headers if n.lower() in (
                        "via", "from", "to", "call-id", "cseq")) + "\r\nContent-Length: 0\r\n\r\n")
                self.send(ok.encode())
                return msg
        raise TimeoutError("no BYE from the server")

    def _learn_remote(self, body: bytes) -> None:
        text = body.decode()
        port = int(text.split("m=audio ", 1)[1].split()[0])
        self.remote_rtp = ("127.0.0.1", port)

    # -- RTP -------------------------------------------------------------------------------

    def send_frames(self, payloads: list[bytes], pt: int = 0) -> None:
        """Send 20 ms frames paced in real time."""
        assert self.remote_rtp is not None
        start = time.monotonic()
        for i, payload in enumerate(payloads):
            header = bytes([0x80, pt]) + self.seq.to_bytes(2, "big") + self.ts.to_bytes(4, "big")
            self.rtp.sendto(header + b"\x12\x34\x56\x78" + payload, self.remote_rtp)
            self.seq = (self.seq + 1) & 0xFFFF
            self.ts = (self.ts + 160) & 0xFFFFFFFF
            self.drain_rtp()
            delay = start + (i + 1) * 0.02 - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def rfc4733_digits(self, digits: str, tone_ms: int = 100, gap_ms: int = 100,
                       pt: int = 101) -> None:
        """Key digits as RFC 4733 events (one timestamp per event, three end packets),
        paced in real time, with silence between them."""
        assert self.remote_rtp is not None
        for digit in digits:
            code = "0123456789*#".index(digit)
            steps, ts = tone_ms // 20, self.ts
            packets = [(False, k * 160) for k in range(1, steps + 1)] + [(True, steps * 160)] * 3
            for i, (end, duration) in enumerate(packets):
                header = bytes([0x80, pt | (0x80 if i == 0 else 0)]) + self.seq.to_bytes(2, "big")
                event = bytes([code, (0x80 if end else 0) | 10]) + duration.to_bytes(2, "big")
                self.rtp.sendto(header + ts.to_bytes(4, "big") + b"\x12\x34\x56\x78" + event,
                                self.remote_rtp)
                self.seq = (self.seq + 1) & 0xFFFF
                self.drain_rtp()
                time.sleep(0.02)
            self.ts = (ts + steps * 160) & 0xFFFFFFFF
            self.silence(gap_ms / 1000)

    def drain_rtp(self) -> None:
        while True:
            try:
                self.rtp.recv(2048)
                self.received_rtp += 1
            except BlockingIOError:
                return

    def silence(self, seconds: float) -> None:
        self.send_frames([b"\xff" * 160] * int(seconds / 0.02))

    def inband_digits(self, digits: str, tone_ms: int = 80, gap_ms: int = 80) -> None:
        pcm = []
        for d in digits:
            pcm.append(dtmf_tone(d, tone_ms / 1000))
            pcm.append(np.zeros(int(8 * gap_ms), dtype=np.int16))
        audio = ulaw_encode(np.concatenate(pcm))
        pad = (-len(audio)) % 160
        audio += b"\xff" * pad
        self.send_frames([audio[i:i + 160] for i in range(0, len(audio), 160)])
