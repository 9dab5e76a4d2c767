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
system calls) is not counted; the sweeper is off (its work is per second, not per call). The same
sessions are then played as ChargeBatches of 100 (each batch one step of 100 sessions), and the
main thread's count divided by the charges: the serving process' half of ChargeBatch's CPU per charge.
The echo server is counted a second time making one Redis round trip a Charge (a PING to an
embedded Redis of its own, over creditd's lean connection: loadtest/echo.py --redis-url), the
floor of any server answering a Charge from one Redis call; creditd's own work a Charge is what it
spends over that floor. Each round runs every server afresh; the ratios printed last are the
rounds' medians (--rounds, 3), with each round's. Needs valgrind (Debian's package: valgrind, callgrind_control).

The Nchf front is counted the same way in each round, against the gRPC server's Charge of the same
shape: `creditd chf`, under callgrind beside the running `creditd serve` and on its Redis, plays
PDU sessions one request at a time over cleartext HTTP/2 (create, three updates, release; data, 1 MB
asked, 1 500 bytes used, as loadtest.nchf sends), and creditd serve plays the same sessions as unary
Charges. granian serves HTTP on threads of its own, so the ratio is given for the main thread and
for all threads."""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import click
import grpc
import httpx
import msgspec

from creditd.devtools.ports import free_port, wait_listening
from creditd.resources import default_config_path
from creditd.store.embedded import EmbeddedRedis
from creditd.v1 import creditd_pb2 as pb
from creditd.v1 import creditd_pb2_grpc as pb_grpc
from loadtest.nchf import API, MB, USED_BYTES, nchf_body
from loadtest.nchf import charge as data_charge
from loadtest.redis_instructions import require_callgrind

START_TIMEOUT_S = 240.0
CHANNEL_READY_S = 60.0
DUMP_WAIT_S = 60.0
ACCOUNTS = 50
WARM_UP_CHARGES = 100
# The echo server making one Redis round trip a Charge (loadtest/echo.py --redis-url).
FLOOR = "echo+redis"
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

    @property
    def all_threads_per_rpc(self) -> float:
        return self.main_thread_per_rpc + self.other_threads_per_rpc


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


def voice_charge(session_id: str, kind: int, number: int, account_id: str) -> pb.ChargeRequest:
    """A voice call to a Thai number, 60 s used by each request after the INITIAL."""
    used = 0 if kind == pb.ChargeRequest.INITIAL else 60
    return pb.ChargeRequest(
        session_id=session_id,
        request_type=kind,  # type: ignore[arg-type]
        request_number=number,
        account_id=account_id,
        gateway_id="gw-1",
        called_party="66812345678",
        units=[pb.UnitRequest(rating_group=2, used=used)],
    )


def data_charge_as_nchf(session_id: str, kind: int, number: int, account_id: str) -> pb.ChargeRequest:
    """What loadtest.nchf sends as gRPC: data, 1 MB asked (none by the TERMINATE), 1 500 bytes used
    by each request after the INITIAL."""
    used = 0 if kind == pb.ChargeRequest.INITIAL else USED_BYTES
    requested = 0 if kind == pb.ChargeRequest.TERMINATE else MB
    return data_charge(session_id, kind, number, account_id, used, requested)


def charges(
    stub: pb_grpc.CreditControlStub,
    count: int,
    prefix: str,
    request_of: Callable[[str, int, int, str], pb.ChargeRequest] = voice_charge,
) -> None:
    """count unary Charges in sessions of SESSION, one at a time, each answered SUCCESS."""
    done, session = 0, 0
    while done < count:
        session_id, account_id = f"{prefix}-{session}", f"6690{session % ACCOUNTS:07d}"
        for number, kind in enumerate(SESSION):
            answer = stub.Charge(request_of(session_id, kind, number, account_id), timeout=60)
            assert answer.result == pb.SUCCESS, answer
            done += 1
        session += 1


SESSION_UPDATES = len(SESSION) - 2
BATCH_SIZE = 100


def batches(stub: pb_grpc.CreditControlStub, count: int, prefix: str) -> None:
    """count Charges in ChargeBatches of BATCH_SIZE: BATCH_SIZE sessions at a time, each batch one step
    of all of them (their INITIALs, then each UPDATE, then their TERMINATEs), each answered SUCCESS."""
    done, first = 0, 0
    while done < count:
        numbers = range(first, first + BATCH_SIZE)
        sessions = [(f"{prefix}-{number}", f"6690{number % ACCOUNTS:07d}") for number in numbers]
        for request_number, kind in enumerate(SESSION):
            requests = [voice_charge(session, kind, request_number, account) for session, account in sessions]
            answer = stub.ChargeBatch(pb.ChargeBatchRequest(requests=requests), timeout=60)
            assert all(item.result == pb.SUCCESS for item in answer.answers), answer
            done += BATCH_SIZE
        first += BATCH_SIZE


def nchf_requests(client: httpx.Client, count: int, prefix: int) -> None:
    """count Nchf requests, one at a time, over one HTTP/2 connection: the same sessions as
    data_charge_as_nchf's sessions (create, updates, release), each answered as it should be."""
    done, session = 0, 0
    while done < count:
        account_id = f"6690{session % ACCOUNTS:07d}"
        created_at = f"2026-12-04T10:{prefix % 60:02d}:00.{session:09d}Z"
        create = client.post(API + "/chargingdata", json=nchf_body(account_id, 0, created_at, 0, MB))
        assert create.status_code == 201, create.text
        reference = create.headers["location"].rsplit("/", 1)[1]
        for number in range(1, SESSION_UPDATES + 1):
            body = nchf_body(account_id, number, created_at, USED_BYTES, MB)
            answer = client.post(f"{API}/chargingdata/{reference}/update", json=body)
            assert answer.status_code == 200, answer.text
        release = nchf_body(account_id, SESSION_UPDATES + 1, created_at, USED_BYTES, 0)
        assert client.post(f"{API}/chargingdata/{reference}/release", json=release).status_code == 204
        done += SESSION_UPDATES + 2
        session += 1


class CountedServer:
    """A server process under callgrind, counting only between start_counting and the dump. A gRPC
    server is ready when its channel is; another (grpc_ready False) when its port takes connections."""

    def __init__(self, name: str, command: list[str], work: Path, port: int, grpc_ready: bool = True) -> None:
        self.name, self.work, self.target = name, work, f"127.0.0.1:{port}"
        self.dump_prefix = work / f"callgrind.{name}"
        self.dumps = 0
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
            # the port first: a channel asked before the server listens backs off for up to two minutes
            wait_listening(port, self.process, START_TIMEOUT_S)
            if grpc_ready:
                grpc.channel_ready_future(self.channel).result(timeout=CHANNEL_READY_S)
        except (grpc.FutureTimeoutError, TimeoutError) as error:
            self.stop()
            message = f"{name} did not serve within {START_TIMEOUT_S:g} s (see {self.log.name})"
            raise click.ClickException(message) from error
        except ChildProcessError as error:
            self.stop()
            raise click.ClickException(f"{name} {error} (see {self.log.name})") from error

    def _control(self, *flags: str) -> None:
        command = ["callgrind_control", *flags, str(self.process.pid)]
        subprocess.run(command, capture_output=True, check=True, timeout=60)

    def count(self, play: Callable[[], None]) -> tuple[int, int]:
        """Runs play() while counting; returns the instructions of the main thread and of the others."""
        self._control("-i", "on")
        self._control("-z")
        play()
        self._control("-d")
        self.dumps += 1
        deadline = time.monotonic() + DUMP_WAIT_S
        while time.monotonic() < deadline:
            dumps = sorted(self.work.glob(f"{self.dump_prefix.name}.{self.process.pid}.{self.dumps}-*"))
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


def create_accounts(channel: grpc.Channel) -> None:
    accounts = pb_grpc.AccountsStub(channel)
    for number in range(ACCOUNTS):
        account = pb.CreateAccountRequest(account_id=f"6690{number:07d}", plan="standard", initial_balance=10**11)
        accounts.CreateAccount(account, timeout=60)


def count_chf(config: Path, work: Path, charge_count: int) -> ServerInstructions:
    """`creditd chf` on the running creditd's embedded Redis, counted over Nchf sessions."""
    port = free_port()
    command = ["-m", "creditd", "chf", "--data-dir", str(work / "data"), "--config", str(config)]
    command += ["--log-level", "WARNING", "--listen", f"127.0.0.1:{port}"]
    server = CountedServer("chf", command, work, port, grpc_ready=False)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", http1=False, http2=True, timeout=60) as client:
            nchf_requests(client, WARM_UP_CHARGES, 0)
            counts = server.count(partial(nchf_requests, client, charge_count, 1))
    finally:
        server.stop()
    return per_rpc("chf", charge_count, counts)


def per_rpc(name: str, charge_count: int, counts: tuple[int, int]) -> ServerInstructions:
    main, others = counts
    return ServerInstructions(name, charge_count, main / charge_count, others / charge_count)


def count_echo(name: str, flags: list[str], work: Path, charge_count: int) -> ServerInstructions:
    port = free_port()
    echo = CountedServer(name, ["-m", "loadtest.echo", "--listen", f"127.0.0.1:{port}", *flags], work, port)
    try:
        stub = pb_grpc.CreditControlStub(echo.channel)
        charges(stub, WARM_UP_CHARGES, f"{name}-warm")
        return per_rpc(name, charge_count, echo.count(partial(charges, stub, charge_count, name)))
    finally:
        echo.stop()


def measure(charge_count: int, work: Path) -> list[ServerInstructions]:
    """echo, echo with a Redis round trip, then creditd (voice Charges, then data Charges shaped as
    Nchf's), then the chf beside it."""
    config = config_without_sweeper(work)
    rows = [count_echo("echo", [], work, charge_count)]
    with EmbeddedRedis(work / "floor-redis") as floor_redis:
        rows.append(count_echo(FLOOR, ["--redis-url", floor_redis.url], work, charge_count))
    port = free_port()
    command = ["-m", "creditd", "serve", "--metrics-listen", "", "--log-level", "WARNING", "--config", str(config)]
    command += ["--data-dir", str(work / "data"), "--listen", f"127.0.0.1:{port}"]
    creditd = CountedServer("creditd", command, work, port)
    try:
        create_accounts(creditd.channel)
        stub = pb_grpc.CreditControlStub(creditd.channel)
        charges(stub, WARM_UP_CHARGES, "creditd-warm")
        rows.append(per_rpc("creditd", charge_count, creditd.count(partial(charges, stub, charge_count, "creditd"))))
        batched = -(-charge_count // (BATCH_SIZE * len(SESSION))) * BATCH_SIZE * len(SESSION)
        batches(stub, BATCH_SIZE * len(SESSION), "batch-warm")
        rows.append(per_rpc("creditd batch", batched, creditd.count(partial(batches, stub, batched, "batch"))))
        charges(stub, WARM_UP_CHARGES, "data-warm", data_charge_as_nchf)
        counts = creditd.count(partial(charges, stub, charge_count, "data", data_charge_as_nchf))
        rows += [per_rpc("creditd data", charge_count, counts), count_chf(config, work, charge_count)]
    finally:
        creditd.stop()
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
    ratios: dict[str, list[float]] = {"creditd / echo, main thread": [], "chf / creditd data, main thread": []}
    ratios[f"{FLOOR} / echo, main thread"] = []
    ratios[f"creditd / {FLOOR}, main thread"] = []
    ratios["creditd batched charge / unary Charge, main thread"] = []
    ratios["chf / creditd data, all threads"] = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="creditd-server-instructions-") as work:
            run = measure(charge_count, Path(work))
        by_name = {row.server: row for row in run}
        echo, creditd, data, chf = (by_name[name] for name in ("echo", "creditd", "creditd data", "chf"))
        ratios["creditd / echo, main thread"].append(creditd.main_thread_per_rpc / echo.main_thread_per_rpc)
        floor = by_name[FLOOR].main_thread_per_rpc
        ratios[f"{FLOOR} / echo, main thread"].append(floor / echo.main_thread_per_rpc)
        ratios[f"creditd / {FLOOR}, main thread"].append(creditd.main_thread_per_rpc / floor)
        batched = by_name["creditd batch"].main_thread_per_rpc / creditd.main_thread_per_rpc
        ratios["creditd batched charge / unary Charge, main thread"].append(batched)
        ratios["chf / creditd data, main thread"].append(chf.main_thread_per_rpc / data.main_thread_per_rpc)
        ratios["chf / creditd data, all threads"].append(chf.all_threads_per_rpc / data.all_threads_per_rpc)
        rows += run
    click.echo(f"{'server':14} {'main thread per rpc':>20} {'other threads per rpc':>22}")
    for row in rows:
        click.echo(f"{row.server:14} {row.main_thread_per_rpc:>20,.0f} {row.other_threads_per_rpc:>22,.0f}")
    for name, values in ratios.items():
        spread = f" (rounds: {', '.join(f'{ratio:.2f}' for ratio in values)})" if rounds > 1 else ""
        click.echo(f"{name}: {statistics.median(values):.2f}{spread}")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_bytes(msgspec.json.encode(rows))
    click.echo(f"written: {json_path}")


if __name__ == "__main__":
    main()
