"""Malformed SIP and RTP garbage against the running server: right status, server keeps answering."""

from __future__ import annotations

import os
import socket

import pytest

from .server import RunningServer, options_ok

BASE = (
    "{method} sip:100@127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{branch};rport\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:bad@127.0.0.1>;tag=b1\r\n"
    "To: <sip:100@127.0.0.1>\r\n"
    "Call-ID: bad-{branch}\r\n"
    "CSeq: 1 {method}\r\n"
    "{extra}"
    "Content-Length: 0\r\n\r\n"
)

CASES = [
    ("FOOBAR", "", 501),
    ("INVITE", "", 0),  # replaced below: SIP/3.0
    ("SUBSCRIBE", "", 405),
    ("INVITE", "Require: 100rel, timer\r\n", 420),
    ("BYE", "", 481),
]


def _udp(port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(2)
    return s


def _status(data: bytes) -> int:
    return int(data.split(b" ", 2)[1])


@pytest.mark.e2e
@pytest.mark.parametrize(("method", "extra", "status"), [c for c in CASES if c[2]])
def test_bad_requests_over_udp(server: RunningServer, method: str, extra: str, status: int) -> None:
    with _udp(server.sip_port) as s:
        port = s.getsockname()[1]
        s.sendto(BASE.format(method=method, port=port, branch=os.urandom(4).hex(),
                             extra=extra).encode(), ("127.0.0.1", server.sip_port))
        assert _status(s.recv(4096)) == status


@pytest.mark.e2e
def test_wrong_version_unknown_scheme_and_garbage(server: RunningServer) -> None:
    with _udp(server.sip_port) as s:
        port = s.getsockname()[1]
        target = ("127.0.0.1", server.sip_port)
        msg = BASE.format(method="OPTIONS", port=port, branch="v3", extra="")
        s.sendto(msg.replace("SIP/2.0\r\n", "SIP/3.0\r\n", 1).encode(), target)
        assert _status(s.recv(4096)) == 505
        msg = BASE.format(method="INVITE", port=port, branch="tel", extra="")
        s.sendto(msg.replace("sip:100@127.0.0.1 SIP", "tel:+15551234 SIP", 1).encode(), target)
        assert _status(s.recv(4096)) == 416
        bad_cseq = BASE.format(method="OPTIONS", port=port, branch="cs", extra="")
        s.sendto(bad_cseq.replace("CSeq: 1 OPTIONS", "CSeq: x OPTIONS").encode(), target)
        reply = s.recv(4096)
        assert _status(reply) == 400 and b"CSeq" in reply.split(b"\r\n")[0]
        for junk in (b"\x00" * 50, os.urandom(300), b"INVITE\r\n\r\n", b"SIP/2.0 200 OK\r\n\r\n"):
            s.sendto(junk, target)
    assert options_ok(server.sip_port)
    assert server.alive()
    assert server.health()["counters"]["rx_malformed"] >= 4


@pytest.mark.e2e
def test_tcp_framing_error_closes_only_that_connection(server: RunningServer) -> None:
    with socket.create_connection(("127.0.0.1", server.sip_port), timeout=3) as c:
        # a stream without Content-Length cannot be framed (RFC 3261 §18.3)
        c.sendall(b"OPTIONS sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKt\r\n"
                  b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: t\r\nCSeq: 1 OPTIONS\r\n\r\n")
        assert c.recv(4096).startswith(b"SIP/2.0 400")
    with socket.create_connection(("127.0.0.1", server.sip_port), timeout=3) as c:
        msg = BASE.format(method="OPTIONS", port=9, branch="tcpok", extra="").replace("UDP", "TCP")
        c.sendall(b"\r\n\r\n" + msg.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += c.recv(4096)
        assert b"SIP/2.0 200" in data
    assert options_ok(server.sip_port)


@pytest.mark.e2e
def test_rtp_garbage_to_a_media_port_is_dropped(server: RunningServer) -> None:
    """Garbage sent to the RTP range (no call or wrong version) never hurts the server."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for port in range(server.rtp_ports[0], server.rtp_ports[0] + 20, 2):
            s.sendto(os.urandom(40), ("127.0.0.1", port))
    assert options_ok(server.sip_port)
