"""A real Kannel for the SMS tests: bearerbox with a fake SMSC link, smsbox with its sendsms HTTP
interface, and Kannel's fakesmsc test SMSC connected to the bearerbox, which prints every message
the gateway delivers to it. fakesmsc only reads while it sends, so it keeps sending mobile-originated
messages from a test number (each answered by smsbox's default service), and the received lines are
filtered by receiver. Started on free loopback ports in a temporary directory; stopped by the
context manager."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from creditd.devtools.ports import free_port

BEARERBOX = shutil.which("bearerbox") or "/usr/sbin/bearerbox"
SMSBOX = shutil.which("smsbox") or "/usr/sbin/smsbox"
FAKESMSC = "/usr/lib/kannel/test/fakesmsc"
USER, PASSWORD = "creditd", "secret"
START_TIMEOUT_S = 20.0
GOT = "Got message "


class Delivered(msgspec.Struct, frozen=True):
    sender: str
    receiver: str
    coding: str
    text: str


def decode(coding: str, data: str) -> str:
    raw = urllib.parse.unquote_to_bytes(data.replace("+", "%20"))
    return raw.decode("utf-16-be") if coding == "ucs-2" else raw.decode("latin-1")


class Kannel:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.admin_port, self.box_port, self.smsc_port, self.sendsms_port = (free_port() for _ in range(4))
        self.processes: list[subprocess.Popen[bytes]] = []
        self.received = directory / "fakesmsc.out"

    @property
    def sendsms_url(self) -> str:
        return f"http://127.0.0.1:{self.sendsms_port}/cgi-bin/sendsms"

    def _config(self) -> Path:
        d = self.directory
        path = d / "kannel.conf"
        path.write_text(
            f"""group = core
admin-port = {self.admin_port}
admin-password = admin
smsbox-port = {self.box_port}
log-file = "{d}/bearerbox.log"
log-level = 1
box-allow-ip = "127.0.0.1"

group = smsc
smsc = fake
smsc-id = fake
port = {self.smsc_port}
connect-allow-ip = "127.0.0.1"

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {self.box_port}
sendsms-port = {self.sendsms_port}
log-file = "{d}/smsbox.log"
log-level = 1

group = sendsms-user
username = {USER}
password = {PASSWORD}

group = sms-service
keyword = default
text = "ok"
"""
        )
        return path

    def _start(self, *command: str, output: Path) -> None:
        with output.open("wb") as log:
            self.processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.directory))

    def _wait(self, predicate: object, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not predicate():  # type: ignore[operator]
            for process in self.processes:
                assert process.poll() is None, f"kannel: a process exited while waiting for {what}"
            assert time.monotonic() < deadline, f"kannel: no {what} within {START_TIMEOUT_S} s"
            time.sleep(0.1)

    def start(self) -> None:
        config = str(self._config())
        self._start(BEARERBOX, config, output=self.directory / "bearerbox.out")
        self._wait(lambda: _listening(self.box_port), "bearerbox")
        self._start(SMSBOX, config, output=self.directory / "smsbox.out")
        self._wait(lambda: _listening(self.sendsms_port), "smsbox")
        mo = "10000 20000 text keepalive"
        self._start(
            FAKESMSC, "-H", "127.0.0.1", "-r", str(self.smsc_port), "-i", "0.2", "-m", "-1", mo, output=self.received
        )
        self._wait(lambda: GOT in self.received.read_text(errors="replace"), "fakesmsc traffic")

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def delivered(self, receiver: str) -> list[Delivered]:
        """What the SMSC end got for a receiver, in order."""
        found = []
        for line in self.received.read_text(errors="replace").splitlines():
            if GOT not in line or "<" not in line:
                continue
            body = line.split("<", 1)[1].rstrip(">")
            sender, to, coding, data = (body.split(" ", 3) + [""] * 4)[:4]
            if to == receiver:
                found.append(Delivered(sender, to, coding, decode(coding, data)))
        return found


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


@contextlib.contextmanager
def running_kannel(directory: Path) -> Iterator[Kannel]:
    if not (Path(BEARERBOX).exists() and Path(SMSBOX).exists() and Path(FAKESMSC).exists()):
        pytest.skip(
            "KANNEL NOT INSTALLED: the SMS channel's tests need Debian's kannel and kannel-extras "
            "(bearerbox, smsbox, fakesmsc); .ci/run installs them"
        )
    kannel = Kannel(directory)
    try:
        kannel.start()
        yield kannel
    finally:
        kannel.stop()
