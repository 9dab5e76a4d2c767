"""The README's "Try the portal on your machine" works as written: its four commands run in bash in
an empty folder (tests/try_portal.py) inside a network namespace of their own (`unshare -n`, so
their fixed ports are free and nobody else's), and a visitor who types 081-234-5678 reads the code
from the notifier's log with the last command and ends signed in, the overview showing the ฿100.00
the second command gave the account. Without the right to make a namespace (not root), the commands
run on the machine's own loopback if their ports are free."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PORTS = (50051, 8080, 9464)
TIMEOUT_S = 240


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_the_readme_commands_end_signed_in(tmp_path: Path) -> None:
    if shutil.which("creditd") is None:
        pytest.fail("`creditd` is not on PATH: `python3 -m pip install -e .` first (the README's Quick start)")
    driver = [sys.executable, "-m", "tests.try_portal", str(ROOT / "README.md"), str(tmp_path)]
    isolated = os.geteuid() == 0 and shutil.which("unshare") is not None
    if isolated:
        driver = ["unshare", "-n", *driver]
    else:
        busy = [port for port in PORTS if not port_free(port)]
        assert not busy, f"ports {busy} are taken and no network namespace can be made (not root)"
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(driver, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "signed in: ฿100.00" in done.stdout, done.stdout
