from pathlib import Path

from ivr.loader import load_flow
from ivr.simulator import simulate


def test_demo() -> None:
    r = simulate(load_flow(Path("config/flows/main.yaml")), "1234#1")
    assert r.ended == "queue:billing"
