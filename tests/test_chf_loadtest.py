"""loadtest.nchf runs to the end by itself on a small shape (no timing is asserted): an embedded Redis,
`creditd serve` and `creditd chf` are started, the three phases of each round (unary gRPC Charge,
Nchf over HTTP/2, gRPC again paced at the Nchf phase's rate) answer every request and print their
figures, two rounds give both ratios' lines, and every process is stopped."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_the_nchf_mode_runs_both_phases() -> None:
    command = [sys.executable, "-m", "loadtest.nchf", "--sessions", "3", "--updates", "4", "--connections", "1"]
    command += ["--rounds", "2"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [line for line in run.stdout.splitlines() if line.startswith(("gRPC", "Nchf"))]
    assert [line.split()[0] for line in lines] == ["gRPC", "Nchf", "gRPC@Nchf"] * 2, run.stdout
    assert all(" 18 requests " in line and "CPU per request" in line for line in lines), lines
    rates = [float(line.split(":")[1].split("/s")[0]) for line in lines]
    assert all(paced <= nchf * 1.5 for nchf, paced in zip(rates[1::3], rates[2::3], strict=True)), lines  # paced
    assert "chf / gRPC CPU per request, by round: " in run.stdout
    assert "chf / gRPC at the Nchf phase's rate, by round: " in run.stdout
