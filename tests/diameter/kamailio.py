"""Real IMS clients for the Ro interop tests: kamailio 5.6 (ims_charging, cdp, ims_dialog) as the S-CSCF
asking creditd over Diameter, and SIPp as caller and callee, started from the configs in interop/
(rendered with free loopback ports) as asyncio subprocesses, so that the test's event loop keeps serving
the Diameter front in the meantime. Every process is bounded by a time-out and killed on the way out."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from creditd.devtools.ports import free_port

INTEROP = Path(__file__).parent / "interop"
KAMAILIO = shutil.which("kamailio") or "/usr/sbin/kamailio"
SIPP = shutil.which("sipp") or "/usr/bin/sipp"
IMS_MODULE = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules/ims_charging.so")
# kamailio 5.6.3 can crash in ims_dialog when stopped within 5 s of a BYE (interop notes): wait first.
QUIET_BEFORE_STOP_S = 6.0


def missing() -> str:
    """Why the interop tests cannot run here, or '' when they can."""
    for path in (Path(KAMAILIO), Path(SIPP), IMS_MODULE):
        if not path.exists():
            return f"{path} is missing: apt-get install -y kamailio kamailio-ims-modules sip-tester"
    return ""


@dataclass
class Call:
    returncode: int
    output: str


class Kamailio:
    def __init__(self, directory: Path, creditd_port: int) -> None:
        self.directory = directory
        self.sip_port = free_port()
        self.creditd_port = creditd_port
        self.process: asyncio.subprocess.Process | None = None
        self.log = directory / "kamailio.log"

    def _render(self) -> Path:
        diameter_xml = self.directory / "diameter.xml"
        template = (INTEROP / "diameter.xml").read_text()
        diameter_xml.write_text(
            template.replace("CREDITD_PORT", str(self.creditd_port)).replace("CDP_PORT", str(free_port()))
        )
        config = self.directory / "kamailio.cfg"
        template = (INTEROP / "kamailio.cfg").read_text()
        config.write_text(template.replace("SIP_PORT", str(self.sip_port)).replace("DIAMETER_XML", str(diameter_xml)))
        return config

    async def start(self) -> None:
        config = self._render()
        rundir = self.directory / "run"
        rundir.mkdir()
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                KAMAILIO,
                "-f",
                str(config),
                "-DD",
                "-E",
                "-Y",
                str(rundir),
                "-P",
                str(rundir / "kamailio.pid"),
                stdout=log,
                stderr=log,
                preexec_fn=_no_core_dumps,
                start_new_session=True,
            )

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()

    async def call(self, scenario: str, callee: str, duration_ms: int, timeout_s: float) -> Call:
        """One call from a SIPp caller through kamailio to a SIPp callee; the caller's exit status and output."""
        uas_port, uac_port = free_port(), free_port()
        uas = await asyncio.create_subprocess_exec(
            SIPP,
            "-sf",
            str(INTEROP / "uas_rr.xml"),
            "-i",
            "127.0.0.1",
            "-p",
            str(uas_port),
            "-m",
            "1",
            "-nostdin",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            cwd=self.directory,
        )
        try:
            uac = await asyncio.create_subprocess_exec(
                SIPP,
                "-sf",
                str(INTEROP / scenario),
                "-s",
                callee,
                "-i",
                "127.0.0.1",
                "-p",
                str(uac_port),
                "-rsa",
                f"127.0.0.1:{self.sip_port}",
                f"127.0.0.1:{uas_port}",
                "-m",
                "1",
                "-d",
                str(duration_ms),
                "-nostdin",
                "-trace_err",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                cwd=self.directory,
            )
            try:
                output, _ = await asyncio.wait_for(uac.communicate(), timeout_s)
            except TimeoutError:
                uac.kill()
                output, _ = await uac.communicate()
            assert uac.returncode is not None
            return Call(uac.returncode, output.decode(errors="replace"))
        finally:
            if uas.returncode is None:
                uas.kill()
            await uas.wait()


def _no_core_dumps() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


@contextlib.asynccontextmanager
async def running_kamailio(directory: Path, creditd_port: int) -> AsyncIterator[Kamailio]:
    kamailio = Kamailio(directory, creditd_port)
    await kamailio.start()
    try:
        yield kamailio
    finally:
        await asyncio.sleep(QUIET_BEFORE_STOP_S)
        await kamailio.stop()
