"""The command line as an operator uses it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def sb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "switchboard", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_lint_demo_flows_clean() -> None:
    result = sb("lint", "config/flows", "--prompts", "prompts")
    assert result.returncode == 0, result.stdout + result.stderr


def test_lint_reports_file_line_col(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("flow: bad\nstart: a\nnodes:\n  a: {type: play, prompts: [welcome], next: nowhere}\n")
    result = sb("lint", str(bad))
    assert result.returncode == 1
    assert f"{bad}:4:" in result.stdout and "nowhere" in result.stdout


def test_flow_test_json() -> None:
    result = sb("flow", "test", "config/flows/main.yaml", "--digits", "4711#2", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["variables"]["account"] == "4711" and out["variables"]["choice"] == "2"
    assert out["path"][-1] == "to_support"


def test_run_refuses_bad_config_with_position(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("sip:\n  listen: 127.0.0.1:99999\nbogus: 1\n")
    result = sb("run", "--config", str(cfg))
    assert result.returncode == 2
    assert f"{cfg}:2:" in result.stderr and f"{cfg}:3:" in result.stderr


def test_bad_media_engine_settings_are_refused_with_position(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("media:\n  engine: turbo\n  realtime_priority: 100\n  slice_us: 100001\n"
                   "  background_nice: -1\n  coalesce_us: 5000\n")
    result = sb("run", "--config", str(cfg))
    assert result.returncode == 2
    assert f"{cfg}:2:" in result.stderr and "native or python" in result.stderr
    assert f"{cfg}:3:" in result.stderr and "0 (off) to 99" in result.stderr
    assert f"{cfg}:4:" in result.stderr and "0 (the kernel's) to 100000" in result.stderr
    assert f"{cfg}:5:" in result.stderr and "media.background_nice must be an integer from 0 to 19" in result.stderr
    assert f"{cfg}:6:" in result.stderr and "0 (look at once) to 4000" in result.stderr


def test_bad_flag_values_are_refused() -> None:
    result = sb("run", "--rtp-ports", "30000-20000")
    assert result.returncode != 0 and "port range" in (result.stderr + result.stdout)


def test_fd_limit_is_raised_for_max_calls_within_the_hard_limit() -> None:
    import resource

    from switchboard.cli import raise_fd_limit

    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, before[1]))
        limit = raise_fd_limit(100)  # 100 * 3 + 1024 descriptors
        hard = before[1]
        expected = 1324 if hard == resource.RLIM_INFINITY else min(1324, hard)
        assert limit == expected == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert raise_fd_limit(10) == expected  # never lowered
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)
