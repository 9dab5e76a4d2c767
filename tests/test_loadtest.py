"""The load generator runs to the end by itself on a small shape (a CI smoke test, no timing is
asserted): every phase including both baselines produces figures, no request fails, and the audit of
the run is clean with nothing left reserved."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_smoke_run_finishes_with_a_clean_audit(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    result = subprocess.run([sys.executable, "-m", "loadtest", "--smoke", "--json", str(report_path)],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    report = json.loads(report_path.read_text())
    names = [phase["name"] for phase in report["phases"]]
    assert names[0].startswith("echo") and names[-1].startswith("raw pipelined FCALL")
    assert all(phase["charges"] > 0 and not phase["errors"] for phase in report["phases"])
    assert report["audit_violations"] == [] and report["audit_summary"]["total_reserved"] == 0
    assert "unary Charge / echo unary (target >= 0.8)" in report["ratios"]
    assert report["memory"]["redis bytes per open session"] > 0


def test_growth_run_measures_each_step(tmp_path: Path) -> None:
    report_path = tmp_path / "growth.json"
    result = subprocess.run([sys.executable, "-m", "loadtest.growth", "--steps", "100,300", "--session-steps", "500",
                             "--duration", "0.5", "--json", str(report_path)],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    rows = json.loads(report_path.read_text())
    assert [(row["accounts"], row["open_sessions"]) for row in rows] == [(100, 0), (300, 0), (300, 500)]
    assert all(row["charges_per_s"] > 0 and row["used_memory_bytes"] > 0 for row in rows)
    assert rows[1]["keys"] > rows[0]["keys"]
