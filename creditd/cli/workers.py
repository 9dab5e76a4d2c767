"""`creditd serve --workers N`: N server processes on one port (SO_REUSEPORT, which grpc sets on
Linux), sharing one Redis. The parent starts the embedded Redis if there is one, runs the children,
forwards SIGTERM/SIGINT/SIGHUP to them and stops Redis after they have drained."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)
CHILD_STOP_TIMEOUT_S = 30.0


def worker_metrics_listen(metrics_listen: str, index: int) -> str:
    """Each worker exposes its own endpoint: the configured port plus its index."""
    if not metrics_listen:
        return ""
    host, _, port = metrics_listen.rpartition(":")
    return f"{host}:{int(port) + index}" if int(port) else metrics_listen


def run_workers(
    count: int, redis_url: str, listen: str, metrics_listen: str, config: Path, passthrough: list[str]
) -> int:
    children = []
    for index in range(count):
        command = [
            sys.executable,
            "-m",
            "creditd",
            "serve",
            "--workers",
            "1",
            "--redis",
            redis_url,
            "--listen",
            listen,
            "--config",
            str(config),
            "--metrics-listen",
            worker_metrics_listen(metrics_listen, index),
            *passthrough,
        ]
        children.append(subprocess.Popen(command, stdin=subprocess.DEVNULL))
    log.info("started %d worker processes on %s", count, listen)

    def forward(signal_number: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal_number)

    for signal_number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signal_number, forward)
    codes = [child.wait() for child in children]
    return max(codes, default=0)
