"""The short IVR of `switchboard bench --ivr quick`, for call-setup rate runs.

The demo flow spends about 9 s before the queue (welcome, account, read-back, menu):
at 100 call setups a second that is 900 callers in the IVR before any reaches an
agent. `--ivr quick` dials a flow that keeps the caller's part of the demo (the account
number with `#`, a menu key, the queue with the account as call data) without the
welcome and the read-back, so calls reach an agent about 2.5 s after answer; the
callers play `pcap/ivr_quick_call.pcap`, which keys 4711# from 0.6 s and the menu
choice at 2.4 s.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DID = "200"
PCAP = "pcap/ivr_quick_call.pcap"

FLOW = """\
# written by switchboard bench --ivr quick (switchboard/benchivr.py)
flow: quick
description: Bench IVR - the account and a menu key, then the queue
start: get_account
nodes:
  get_account:
    type: collect
    prompts: [enter_account]
    variable: account
    min_digits: 4
    max_digits: 12
    terminators: "#"
    first_digit_timeout: 5
    inter_digit_timeout: 3
    attempts: 1
    barge_in: true
    next: main_menu
    on_failure: bye
  main_menu:
    type: menu
    prompts: [menu]
    variable: choice
    barge_in: true
    options: {"1": to_billing, "2": to_support}
    timeout: 5
    attempts: 1
    on_failure: bye
  to_billing:
    type: queue
    queue: billing
    skills: {billing: 1}
    data: {account: "{{ account }}"}
    music: music_on_hold
  to_support:
    type: queue
    queue: support
    data: {account: "{{ account }}"}
    music: music_on_hold
  bye: {type: hangup}
"""


def write_flows(report_dir: Path) -> Path:
    """A flow directory with the demo flows and the quick one."""
    flows = report_dir / "flows"
    flows.mkdir(parents=True, exist_ok=True)
    for demo in (REPO / "config" / "flows").glob("*.yaml"):
        (flows / demo.name).write_text(demo.read_text())
    (flows / "quick.yaml").write_text(FLOW)
    return flows


def configure(cfg: str, report_dir: Path) -> str:
    """The bench's server config with the quick flow on DID 200."""
    cfg = cfg.replace(f"flows: {REPO / 'config/flows'}", f"flows: {write_flows(report_dir)}")
    return cfg.replace("dids:\n", f'dids:\n  "{DID}": quick\n', 1)


def scenario(report_dir: Path) -> Path:
    """ivr_load.xml playing the quick call's keys (the pcap by its absolute path: the copy
    lives in the report directory)."""
    text = (REPO / "sipp_scenarios" / "ivr_load.xml").read_text()
    if "pcap/ivr_load_call.pcap" not in text:
        raise RuntimeError("ivr_load.xml no longer plays pcap/ivr_load_call.pcap")
    path = report_dir / "ivr_quick.xml"
    path.write_text(text.replace("pcap/ivr_load_call.pcap", str(REPO / "sipp_scenarios" / PCAP)))
    return path
