"""The config `switchboard bench` writes for a server of its own: the media plane's
scheduling options reach the server config, and out-of-range values are refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from switchboard import benchconfig
from switchboard.bench import parse_args
from switchboard.config import load_config

pytestmark = pytest.mark.skipif(shutil.which("sipp") is None,
                                reason="sipp (apt sip-tester) is not installed")

BASE = ["--calls", "2", "--concurrency", "2", "--cps", "1", "--talk", "1"]


def test_scheduling_options_reach_the_server_config(tmp_path: Path) -> None:
    args = parse_args([*BASE, "--media-slice-us", "0", "--background-nice", "9",
                       "--media-coalesce-us", "1000"])
    assert benchconfig.needs_own(args)
    written = benchconfig.write(args, tmp_path)
    cfg = load_config(written.path)
    assert (cfg.media_slice_us, cfg.background_nice, cfg.media_coalesce_us) == (0, 9, 1000)


def test_without_them_the_config_defaults_hold(tmp_path: Path) -> None:
    args = parse_args([*BASE, "--no-record"])
    cfg = load_config(benchconfig.write(args, tmp_path).path)
    assert (cfg.media_slice_us, cfg.background_nice, cfg.media_coalesce_us) == (100, 5, 0)
    assert not benchconfig.needs_own(parse_args(BASE))


@pytest.mark.parametrize("flag,value", [("--media-slice-us", "-1"), ("--media-slice-us", "100001"),
                                        ("--background-nice", "20"), ("--background-nice", "-1"),
                                        ("--media-coalesce-us", "4001"),
                                        ("--media-coalesce-us", "-1"),
                                        ("--relay-jitter-ms", "201"), ("--relay-jitter-ms", "-1"),
                                        ("--realtime-priority", "100"),
                                        ("--realtime-priority", "-1")])
def test_out_of_range_values_are_refused(flag: str, value: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args([*BASE, flag, value])
    assert flag in capsys.readouterr().err


@pytest.mark.parametrize("flag,value", [("--media-slice-us", "100000"), ("--background-nice", "0"),
                                        ("--media-coalesce-us", "4000"), ("--relay-jitter-ms", "200"),
                                        ("--realtime-priority", "99")])
def test_the_ends_of_each_range_are_taken(flag: str, value: str) -> None:
    assert benchconfig.media_error(parse_args([*BASE, flag, value])) is None
