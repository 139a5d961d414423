"""Agents and queues files: the demo loads; mistakes are refused with file:line:col."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from switchboard.acdconfig import load_acd
from switchboard.config import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_demo_agents_and_queues() -> None:
    s = load_acd(REPO / "config/agents.yaml", REPO / "config/queues.yaml", "switchboard")
    assert sorted(s.agents) == ["1001", "1002", "1003", "1004"]
    assert {a: sorted(s.agents[a].queues) for a in s.agents} == {
        "1001": ["support"], "1002": ["support"], "1003": ["billing"], "1004": ["billing"]}
    assert s.demo_passwords == {"1001", "1002", "1003", "1004"}
    creds = s.credentials["1001"]
    assert len(creds.ha1_md5) == 32 and len(creds.ha1_sha256) == 64
    assert not any("demo-1001" in str(v) for v in vars(creds).values())


@pytest.mark.parametrize(("agents", "queues", "where", "message"), [
    ("agents:\n  - id: '1'\n    password: longenough\n    queues: {nope: 0}\n",
     "queues:\n  q: {}\n", "agents.yaml:4:14", "unknown queue 'nope'"),
    ("agents:\n  - id: '1'\n    password: short\n", "queues: {}\n", "agents.yaml:3:15",
     "8+ characters"),
    ("agents:\n  - id: '1'\n    password: longenough\n    colour: red\n", "queues: {}\n",
     "agents.yaml:4:5", "unknown key 'colour'"),
    ("agents:\n  - id: '1'\n    password: longenough\n    skills: {a: 11}\n", "queues: {}\n",
     "agents.yaml:4", "not in 1..10"),
    ("agents: []\n", "queues:\n  q:\n    strategy: fastest\n", "queues.yaml:3", "strategy"),
    ("agents: []\n", "queues:\n  q:\n    overflow: elsewhere\n", "queues.yaml:3:15",
     "unknown queue 'elsewhere'"),
    ("agents:\n  - id: '1'\n", "queues: {}\n", "agents.yaml:2", "password"),
])
def test_mistakes_are_refused_with_positions(tmp_path: Path, agents: str, queues: str,
                                             where: str, message: str) -> None:
    (tmp_path / "agents.yaml").write_text(agents)
    (tmp_path / "queues.yaml").write_text(queues)
    with pytest.raises(ConfigError) as err:
        load_acd(tmp_path / "agents.yaml", tmp_path / "queues.yaml", "r")
    text = str(err.value)
    assert f"{tmp_path}/{where}" in text and message in text, text


def test_demo_passwords_refuse_a_non_loopback_address() -> None:
    result = subprocess.run([sys.executable, "-m", "switchboard", "run", "--sip", "0.0.0.0:5999",
                             "--http", "127.0.0.1:18099"], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "demo passwords" in result.stderr and "refusing to listen on 0.0.0.0" in result.stderr
