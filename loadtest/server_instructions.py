"""python -m loadtest.server_instructions: the machine instructions creditd's serving process spends
per unary Charge, beside the echo server's per RPC (loadtest/echo.py), both counted by valgrind's
callgrind in the same run.

loadtest's server CPU per RPC comes from /proc while the load generator, the server and Redis share two
cores that other work also wants: it moves by 10 to 20 % between runs, more than most changes to the
handler. An instruction count repeats: each server runs under callgrind (counting only while the
charges play, --instr-atstart=no), a client sends `--charges` Charges one at a time (sessions of
INITIAL, three UPDATEs and TERMINATE, voice to a Thai number: one call to Redis per pipeline, as
most are under unary load), and the count of the server's main thread (the event loop: gRPC's
handlers, creditd's, the Redis exchange) is divided by the charges. gRPC's poller thread is reported
apart: how often it spins depends on timing, so its count moves between runs. Kernel time (the
system calls) is not counted; the sweeper is off (its work is per second, not per call).
Each round runs both servers afresh; the ratio printed last is the rounds' median (--rounds, 3), with
each round's. Needs valgrind (Debian's package: valgrind, callgrind_control)."""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import grpc
import msgspec

from creditd.devtools.ports import free_port
from creditd.resources import default_config_path
from creditd.v1 import creditd_pb2 as pb
from creditd.v1 import creditd_pb2_grpc as pb_grpc
from loadtest.redis_instructions import require_callgrind

START_TIMEOUT_S = 240.0
DUMP_WAIT_S = 60.0
ACCOUNTS = 50
WARM_UP_CHARGES = 100
SESSION = (
    pb.ChargeRequest.INITIAL,
    pb.ChargeRequest.UPDATE,
    pb.ChargeRequest.UPDATE,
    pb.ChargeRequest.UPDATE,
    pb.ChargeRequest.TERMINATE,
)


class ServerInstructions(msgspec.Struct):
    server: str
    charges: int
    main_thread_per_rpc: float
    other_threads_per_rpc: float


def config_without_sweeper(work: Path) -> Path:
    """The shipped config with the sweeper off: its passes are per second, and under callgrind a
    second holds a few calls, not thousands."""
    text, count = re.subn(
        r"(?m)^(\[sweeper\]\s*\nenabled\s*=\s*)true", r"\1false", default_config_path().read_text(encoding="utf-8")
    )
    assert count == 1, "the shipped config's [sweeper] table no longer starts with enabled = true"
    path = work / "creditd.toml"
    path.write_text(text, encoding="utf-8")
    return path


def charges(stub: pb_grpc.CreditControlStub, count: int, prefix: str) -> None:
    """count unary Charges, one at a time, each answered SUCCESS."""
    done, session = 0, 0
    while done < count:
        for number, kind in enumerate(SESSION):
            used = 0 if kind == pb.ChargeRequest.INITIAL else 60
            request = pb.ChargeRequest(
                session_id=f"{prefix}-{session}",
                request_type=kind,
                request_number=number,
                account_id=f"6690{session % ACCOUNTS:07d}",
                gateway_id="gw-1",
                called_party="66812345678",
                units=[pb.UnitRequest(rating_group=2, used=used)],
            )
            answer = stub.Charge(request, timeout=60)
            assert answer.result == pb.SUCCESS, answer
            done += 1
        session += 1


class CountedServer:
    """A server process under callgrind, counting only between start_counting and the dump."""

    def __init__(self, name: str, command: list[str], work: Path, port: int) -> None:
        self.name, self.work, self.target = name, work, f"127.0.0.1:{port}"
        self.dump_prefix = work / f"callgrind.{name}"
        valgrind = [
            shutil.which("valgrind") or "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--separate-threads=yes",
            f"--callgrind-out-file={self.dump_prefix}.%p",
        ]
        self.log = (work / f"{name}.log").open("wb")
        self.process = subprocess.Popen(
            [*valgrind, sys.executable, *command], cwd=work, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log
        )
        self.channel = grpc.insecure_channel(self.target)
        try:
            grpc.channel_ready_future(self.channel).result(timeout=START_TIMEOUT_S)
        except grpc.FutureTimeoutError as error:
            self.stop()
            message = f"{name} did not serve within {START_TIMEOUT_S:g} s (see {self.log.name})"
            raise click.ClickException(message) from error

    def _control(self, *flags: str) -> None:
        command = ["callgrind_control", *flags, str(self.process.pid)]
        subprocess.run(command, capture_output=True, check=True, timeout=60)

    def count(self, play: int) -> tuple[int, int]:
        """Plays `play` charges while counting; returns the instructions of the main thread and of the
        others."""
        self._control("-i", "on")
        self._control("-z")
        charges(pb_grpc.CreditControlStub(self.channel), play, f"{self.name}-{time.monotonic_ns()}")
        self._control("-d")
        deadline = time.monotonic() + DUMP_WAIT_S
        while time.monotonic() < deadline:
            dumps = sorted(self.work.glob(f"{self.dump_prefix.name}.{self.process.pid}.1-*"))
            totals = [re.search(r"^summary: (\d+)$", path.read_text(), re.M) for path in dumps]
            if dumps and all(totals):
                counts = [int(match.group(1)) for match in totals if match]
                return counts[0], sum(counts[1:])
            time.sleep(0.2)
        raise TimeoutError(f"callgrind wrote no dump for {self.name}")

    def stop(self) -> None:
        self.channel.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
        self.log.close()


def measure(charge_count: int, work: Path) -> list[ServerInstructions]:
    rows = []
    config = config_without_sweeper(work)
    creditd = ["-m", "creditd", "serve", "--metrics-listen", "", "--log-level", "WARNING", "--config", str(config)]
    servers: dict[str, list[str]] = {
        "echo": ["-m", "loadtest.echo"],
        "creditd": [*creditd, "--data-dir", str(work / "data")],
    }
    for name, command in servers.items():
        port = free_port()
        server = CountedServer(name, [*command, "--listen", f"127.0.0.1:{port}"], work, port)
        try:
            if name == "creditd":
                accounts = pb_grpc.AccountsStub(server.channel)
                for number in range(ACCOUNTS):
                    account = pb.CreateAccountRequest(
                        account_id=f"6690{number:07d}", plan="standard", initial_balance=10**11
                    )
                    accounts.CreateAccount(account, timeout=60)
            charges(pb_grpc.CreditControlStub(server.channel), WARM_UP_CHARGES, f"{name}-warm")
            main, others = server.count(charge_count)
        finally:
            server.stop()
        rows.append(ServerInstructions(name, charge_count, main / charge_count, others / charge_count))
    return rows


@click.command()
@click.option("--charges", "charge_count", default=300, show_default=True, help="unary Charges counted per server")
@click.option(
    "--rounds", default=3, show_default=True, type=click.IntRange(1, 9), help="whole runs; the ratio is their median"
)
@click.option(
    "--json", "json_path", type=click.Path(path_type=Path), default=Path("loadtest/results/server_instructions.json")
)
def main(charge_count: int, rounds: int, json_path: Path) -> None:
    require_callgrind()
    rows: list[ServerInstructions] = []
    ratios = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="creditd-server-instructions-") as work:
            run = measure(charge_count, Path(work))
        by_name = {row.server: row for row in run}
        ratios.append(by_name["creditd"].main_thread_per_rpc / by_name["echo"].main_thread_per_rpc)
        rows += run
    click.echo(f"{'server':10} {'main thread per rpc':>20} {'other threads per rpc':>22}")
    for row in rows:
        click.echo(f"{row.server:10} {row.main_thread_per_rpc:>20,.0f} {row.other_threads_per_rpc:>22,.0f}")
    spread = f" (rounds: {', '.join(f'{ratio:.2f}' for ratio in ratios)})" if rounds > 1 else ""
    click.echo(f"creditd / echo, main thread: {statistics.median(ratios):.2f}{spread}")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_bytes(msgspec.json.encode(rows))
    click.echo(f"written: {json_path}")


if __name__ == "__main__":
    main()
