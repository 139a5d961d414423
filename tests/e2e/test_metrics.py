"""Prometheus /metrics: well-formed exposition text whose figures follow real traffic."""

from __future__ import annotations

import re
import time
import urllib.request

import pytest

from .server import RunningServer
from .uac import Uac, sdp

pytestmark = pytest.mark.e2e

SAMPLE = re.compile(r'^switchboard_[a-z_]+(\{([a-z_]+="[^"\\\n]*",?)+\})? -?[0-9.e+-]+$')


def scrape(server: RunningServer) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/metrics", timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            assert line.split()[2].startswith("switchboard_")
            continue
        assert SAMPLE.match(line), f"not exposition format: {line!r}"
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    return samples


def test_metrics_follow_a_call(server: RunningServer) -> None:
    before = scrape(server)
    assert before['switchboard_calls{state="ivr"}'] == 0
    assert before['switchboard_agents{state="idle",status="logged_out"}'] == 4
    assert 'switchboard_queue_waiting{queue="billing"}' in before
    uac = Uac(server.sip_port)
    try:
        uac.invite(sdp(uac.rtp_port))
        uac.ack()
        uac.silence(1.0)
        during = scrape(server)
        assert during['switchboard_calls{state="ivr"}'] == 1
        assert during["switchboard_sip_dialogs"] == 1 and during["switchboard_rtp_ports_in_use"] == 1
        assert during["switchboard_recordings_active"] == 1
        assert during['switchboard_recordings_total{outcome="started"}'] == 1
        uac.bye()
    finally:
        uac.close()
    server.wait_cdrs(1)
    after = scrape(server)
    assert after['switchboard_calls{state="ivr"}'] == 0
    assert after["switchboard_calls_ended_total"] == 1
    assert after["switchboard_rtp_packets_sent_total"] >= 40  # 1 s of prompt audio
    assert after["switchboard_rtp_packets_received_total"] >= 40
    assert after['switchboard_sip_requests_received_total{method="INVITE"}'] >= 1
    assert after["switchboard_recordings_active"] == 0
    assert after['switchboard_event_loop_lag_seconds{quantile="0.5"}'] < 0.05
    assert "switchboard_rtp_late_subticks_total" in after
    assert after["switchboard_recording_io_errors_total"] == 0
    deadline = time.monotonic() + 5  # the WAV is built by the I/O thread after the call
    while scrape(server)['switchboard_recordings_total{outcome="finished"}'] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.1)
