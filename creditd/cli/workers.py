"""`creditd serve --workers N`: N server processes on one port (SO_REUSEPORT, which grpc sets on
Linux), sharing one Redis, and beside them one `creditd chf` for --chf-listen and one `creditd
diameter` for --diameter-listen (one process owns each of those ports). The parent starts the embedded
Redis if there is one, runs the children, forwards SIGTERM and SIGINT to them (SIGHUP, the plan
reload, to the workers) and stops Redis after they have drained. A child that ends before any stop
signal (its port taken, a crash) stops the others: the parent exits non-zero rather than serve half of
what it was asked to."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
POLL_INTERVAL_S = 0.1
ALL_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# chf and diameter reload nothing on SIGHUP, whose default action would end them; the plans they rate
# with are the Redis library the workers' reload replaces.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
CREDITD = [sys.executable, "-m", "creditd"]


@dataclass(frozen=True)
class Child:
    """One process the parent runs: a worker or a companion front."""

    name: str
    command: list[str]
    signals: tuple[signal.Signals, ...] = ALL_SIGNALS


@dataclass(frozen=True)
class ServeOptions:
    """What `creditd serve` hands on to its children."""

    workers: int
    redis_url: str
    listen: str
    metrics_listen: str
    config: Path
    data_dir: str  # the workers' default sign-in key is <data dir>/sign_in.key, as notify's
    log_level: str
    log_format: str
    tls: tuple[Path | None, Path | None, Path | None]
    chf_listen: str = ""
    diameter_listen: str = ""


def worker_metrics_listen(metrics_listen: str, index: int) -> str:
    """Each child exposes its own endpoint: the configured port plus its index (workers first)."""
    if not metrics_listen:
        return ""
    host, _, port = metrics_listen.rpartition(":")
    return f"{host}:{int(port) + index}" if int(port) else metrics_listen


def children_of(options: ServeOptions) -> list[Child]:
    """The workers, then the chf and diameter companions asked for."""
    shared = ["--redis", options.redis_url, "--config", str(options.config), "--data-dir", options.data_dir]
    shared += ["--log-level", options.log_level, "--log-format", options.log_format]
    for flag, path in zip(("--tls-cert", "--tls-key", "--tls-client-ca"), options.tls, strict=True):
        shared += [flag, str(path)] if path else []
    children = [
        Child(
            f"worker {index + 1}",
            [*CREDITD, "serve", "--workers", "1", *shared, "--listen", options.listen]
            + ["--metrics-listen", worker_metrics_listen(options.metrics_listen, index)],
        )
        for index in range(options.workers)
    ]
    for command, listen in (("chf", options.chf_listen), ("diameter", options.diameter_listen)):
        if listen:
            metrics_listen = worker_metrics_listen(options.metrics_listen, len(children))
            arguments = [*CREDITD, command, "--listen", listen, "--metrics-listen", metrics_listen, *shared]
            children.append(Child(f"{command} on {listen}", arguments, STOP_SIGNALS))
    return children


def exit_status(return_code: int, stopping: bool) -> int:
    """As a shell shows it (a child ended by a signal: 128 + the signal), but one ended by the stop signal
    it was sent (a child still starting has no handler for it yet) stopped as asked: 0."""
    if return_code < 0:
        return 0 if stopping and -return_code in STOP_SIGNALS else 128 - return_code
    return return_code


def run_workers(children: list[Child]) -> int:
    """Runs the children until all have ended; returns the exit status of the one that ended first on
    its own (at least 1), else the worst of theirs."""
    started: list[tuple[Child, subprocess.Popen[bytes]]] = []
    stopping = False

    def forward(signal_number: int, _frame: object) -> None:
        nonlocal stopping
        stopping = stopping or signal_number != signal.SIGHUP
        for child, process in started:
            if signal_number in child.signals and process.poll() is None:
                process.send_signal(signal_number)

    for signal_number in ALL_SIGNALS:
        signal.signal(signal_number, forward)
    for child in children:
        if not stopping:  # a stop signal during the start starts no more
            started.append((child, subprocess.Popen(child.command, stdin=subprocess.DEVNULL)))
    log.info("started %s", ", ".join(child.name for child, _ in started))
    failed_status: int | None = None
    while True:
        ended = [
            (child.name, exit_status(code, stopping))
            for child, process in started
            if (code := process.poll()) is not None
        ]
        if len(ended) == len(started):
            worst = max((status for _, status in ended), default=0)
            return worst if failed_status is None else max(failed_status, 1)
        if ended and not stopping:
            log.error("%s exited with status %d before any stop signal: stopping the others", *ended[0])
            failed_status = ended[0][1]
            forward(signal.SIGTERM, None)
        time.sleep(POLL_INTERVAL_S)
