"""python -m loadtest.redis_time: the Redis time of one `charge` call, per request type and on the
standard mix, against a minimal reserve-shaped function measured in the same run (the performance
issue's baseline: read two hash fields, check an idempotency record, HINCRBY, HSET, SET with EXPIRE,
XADD; loadtest/baseline.lua) and the charge-shaped floor (loadtest/charge_floor.lua: only the reads
and writes the contract requires of any charge, no logic, packed storage), which shows how far the
commands alone are from the baseline. Everything is piped straight into an embedded server; the time is
INFO commandstats' usec_per_call of FCALL, reset before each phase, so only that phase's calls count;
beside it the server process' CPU per call over the phase (from /proc: reading each call, running it,
writing its reply and appending it to the AOF), which is what a ChargeBatch's charge costs Redis.

Phases: the baseline; the floor; INITIAL for a set of sessions (data, voice to Thai and foreign numbers, one in
ten roaming); an UPDATE for each; a TERMINATE for each; SMS EVENTs; the standard mix
(loadtest/rating.py's traffic). Each figure is the median of --rounds rounds."""

from __future__ import annotations

import asyncio
import datetime
import random
import statistics
import tempfile
import zoneinfo
from collections.abc import Callable, Sequence
from pathlib import Path

import click
import msgspec
import redis
import uvloop

from creditd.config.settings import Settings, load_settings
from creditd.resources import default_config_path
from creditd.store.calls import Calls, ChargeSpec, Command, NewAccount, UnitSpec, fcall, fcall_words
from creditd.store.codes import Code, RequestType
from creditd.store.embedded import EmbeddedRedis
from creditd.store.library import render_library
from loadtest.cpu import cpu_seconds
from loadtest.rating import ANSWER_FORMAT, answer_result, drive
from loadtest.runner import local_server_pid
from loadtest.traffic import Shape

BASELINE = Path(__file__).with_name("baseline.lua")
CHARGE_FLOOR = Path(__file__).with_name("charge_floor.lua")
FLOOR_ACCOUNT = {"balance": 10**12, "reserved": 0, "ledger_seq": 1, "ledger_hash": "0" * 40}
PIPELINE = 500
BASELINE_PHASE, FLOOR_PHASE, MIX_PHASE = "baseline (reserve-shaped)", "charge-shaped floor", "standard mix"
# The floor fed what charge now takes: its request values as one packed word (lua/functions/charge.lua).
PACKED_FLOOR_PHASE = "floor, packed request"
NUMBERS = ("66812345678", "66898765432", "442079460000")
DATA, VOICE, SMS, MB = 1, 2, 3, 1_000_000
PLAN = "standard"


class TypeTimes(msgspec.Struct):
    phase: str
    calls: int
    usec_per_call: float
    ratio_to_baseline: float = 0.0
    # the server process' CPU per call over the phase (0 for the standard mix, whose calls are not counted)
    redis_cpu_us_per_call: float = 0.0


def usec_per_call(client: redis.Redis) -> float:
    return float(client.info("commandstats").get("cmdstat_fcall", {}).get("usec_per_call", 0.0))


def piped(client: redis.Redis, words: Sequence[tuple[object, ...]]) -> float:
    """Runs the FCALLs in pipelines; returns their usec_per_call. Every call must succeed (a charge
    answer with result SUCCESS, a reservation made): a refused call would measure nothing."""
    client.config_resetstat()
    for start in range(0, len(words), PIPELINE):
        pipe = client.pipeline(transaction=False)
        for call in words[start : start + PIPELINE]:
            pipe.execute_command("FCALL", *call)
        for reply in pipe.execute():
            succeeded = reply == 1 if isinstance(reply, int) else answer_result(bytes(reply[2])) == Code.SUCCESS
            assert succeeded, reply
    return usec_per_call(client)


def sessions(count: int, rng: random.Random) -> list[tuple[str, str, int, str, str]]:
    """(session id, account id, rating group, called party, visited PLMN) of each session."""
    return [
        (
            f"t{n}",
            f"6690{n % 200:07d}",
            DATA if n % 2 else VOICE,
            "" if n % 2 else rng.choice(NUMBERS),
            "23415" if rng.random() < 0.1 else "",
        )
        for n in range(count)
    ]


def charge(
    calls: Calls, session: tuple[str, str, int, str, str], kind: int, number: int, used: int, now_ms: int
) -> Command:
    session_id, account_id, group, called_party, visited_plmn = session
    units = (UnitSpec(group, 0, used),)
    spec = ChargeSpec(session_id, kind, number, account_id, "rt", units, called_party, visited_plmn)
    return calls.charge(spec, now_ms, "loadtest", ANSWER_FORMAT)


def last_noon_ms(settings: Settings) -> int:
    """The last noon, in the sample plan's time zone, in Unix ms: the time the phases' calls carry. A
    grant made in the ten minutes before one of the plan's timings starts (its night: 22:00) spans a
    tariff time change and is priced on both sides of it, some 7 000 instructions more an INITIAL or
    UPDATE; at noon no timing starts within a grant's validity, whatever the hour of the run."""
    now = datetime.datetime.now(zoneinfo.ZoneInfo(settings.plans[PLAN].time_zone))
    noon = now.replace(hour=12, minute=0, second=0, microsecond=0)
    if noon > now:
        noon -= datetime.timedelta(days=1)
    return int(noon.timestamp() * 1000)


def prepare(
    client: redis.Redis, session_count: int, bundles: Sequence[str] = ()
) -> tuple[Calls, list[tuple[str, list[tuple[object, ...]]]]]:
    """Loads the libraries and the accounts into an empty server, each account having bought
    `bundles` (catalogue ids); returns the phases' FCALL words, in the order they must run (each
    type's calls act on the sessions the one before opened)."""
    settings = load_settings(default_config_path())
    calls, rng = Calls(settings.redis.partitions), random.Random(17)
    client.flushall()
    client.function_load(render_library(settings), replace=True)
    client.function_load(BASELINE.read_text(), replace=True)
    client.function_load(CHARGE_FLOOR.read_text(), replace=True)
    now_ms = last_noon_ms(settings)
    for n in range(200):
        command = calls.create_account(NewAccount(f"6690{n:07d}", PLAN, 10**12), now_ms, "lt")
        client.execute_command(*fcall_words(command))
        for bundle_id in bundles:
            purchase = calls.purchase_bundle(f"6690{n:07d}", bundle_id, f"lt-{bundle_id}", now_ms, "lt")
            code = client.execute_command(*fcall_words(purchase))[0]
            assert code == Code.SUCCESS, f"purchase of {bundle_id}: {code}"
    # One SMS per account, not measured: every partition the phases charge has then had its first
    # usage record since the library was loaded, as in a server that has run a while. lib/usage.lua
    # trims a partition's stream at that first append and every 64th after; 400 calls over 256
    # partitions would otherwise pay a first append's trims in most of the UPDATE phase's calls.
    warm_up = [(f"w{n}", f"6690{n:07d}", SMS, NUMBERS[0], "") for n in range(200)]
    piped(client, [fcall(charge(calls, session, RequestType.EVENT, 0, 0, now_ms)) for session in warm_up])
    baseline = [
        ("reserve_baseline", 3, f"{{b}}:acct:{n % 200}", f"{{b}}:record:{n}", "{b}:events", 1)
        for n in range(session_count)
    ]
    for n in range(200):
        client.hset(f"{{b}}:acct:{n}", mapping={"balance": 10**12, "reserved": 0})
        client.set(f"{{f}}:acct:{n}", msgspec.msgpack.encode(FLOOR_ACCOUNT | {"plan": "standard", "tier": "bronze"}))
    floor = [
        ("charge_floor", 6, f"{{f}}:acct:{n % 200}", f"{{f}}:session:{n}", f"{{f}}:ledger:{n % 200}")
        + (f"{{f}}:sessions:{n % 200}", "{f}:deadlines", "{f}:usage")
        + (now_ms, int(RequestType.UPDATE), 1, f"6690{n % 200:07d}", "rt", f"t{n}", "", "", 1, DATA, 0, 0, MB, 0, "lt")
        for n in range(session_count)
    ]
    # sessions of its own, new as the first floor's were
    packed_floor = [
        (*words[:3], f"{{f}}:session:packed-{n}", *words[4:9], msgspec.msgpack.encode(list(words[9:-1])), words[-1])
        for n, words in enumerate(floor)
    ]
    open_sessions = sessions(session_count, rng)

    def phase(kind: int, number: int, used: Callable[[int], int]) -> list[tuple[object, ...]]:
        return [fcall(charge(calls, session, kind, number, used(session[2]), now_ms)) for session in open_sessions]

    sms = [(f"e{n}", f"6690{n % 200:07d}", SMS, rng.choice(NUMBERS), "") for n in range(session_count)]
    events = [fcall(charge(calls, session, RequestType.EVENT, 0, 0, now_ms)) for session in sms]
    return calls, [
        (BASELINE_PHASE, baseline),
        (FLOOR_PHASE, floor),
        (PACKED_FLOOR_PHASE, packed_floor),
        ("INITIAL", phase(RequestType.INITIAL, 0, lambda group: 0)),
        ("UPDATE", phase(RequestType.UPDATE, 1, lambda group: MB if group == DATA else 60)),
        ("TERMINATE", phase(RequestType.TERMINATE, 2, lambda group: MB if group == DATA else 45)),
        ("EVENT", events),
    ]


def one_round(
    client: redis.Redis, url: str, session_count: int, mix_s: float, redis_pid: int
) -> dict[str, tuple[float, float]]:
    """Each phase's usec_per_call and the server's CPU µs per call over it."""
    calls, phases = prepare(client, session_count)
    figures = {}
    for name, words in phases:
        started_s = cpu_seconds([redis_pid])
        usec = piped(client, words)
        figures[name] = (usec, (cpu_seconds([redis_pid]) - started_s) / len(words) * 1_000_000)
    client.config_resetstat()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(drive(url, calls, Shape(accounts=200), mix_s, seed=3))
    figures[MIX_PHASE] = (usec_per_call(client), 0.0)
    return figures


@click.command()
@click.option("--sessions", "session_count", default=5000, show_default=True, help="sessions per request-type phase")
@click.option("--mix-duration", default=3.0, show_default=True, help="seconds of the standard mix per round")
@click.option("--rounds", default=3, show_default=True)
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=Path("loadtest/results/redis_time.json"))
def main(session_count: int, mix_duration: float, rounds: int, json_path: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="creditd-redis-time-") as work, EmbeddedRedis(Path(work)) as server:
        client = redis.Redis.from_url(server.url)
        redis_pid = local_server_pid(client.info("server"))
        runs = [one_round(client, server.url, session_count, mix_duration, redis_pid) for _ in range(rounds)]
        client.close()
    medians = {name: statistics.median(run[name][0] for run in runs) for name in runs[0]}
    cpu = {name: statistics.median(run[name][1] for run in runs) for name in runs[0]}
    baseline = medians[BASELINE_PHASE]
    rows = [
        TypeTimes(name, session_count, value, round(value / baseline, 2), round(cpu[name], 1))
        for name, value in medians.items()
    ]
    lines = [
        (row.phase, f"{row.usec_per_call:.2f} ({row.redis_cpu_us_per_call or '-'})", row.usec_per_call / baseline)
        for row in rows
    ]
    print_table(lines, "µs per call (CPU µs)")
    write_rows(rows, json_path)


def print_table(lines: Sequence[tuple[str, str, float]], column: str) -> None:
    """The table of a run: each phase's figure and its ratio to the baseline."""
    click.echo(f"{'phase':28} {column:>22} {'× baseline':>11}")
    for phase, figure, ratio in lines:
        click.echo(f"{phase:28} {figure:>22} {ratio:11.2f}")
    by_phase = {phase: ratio for phase, _, ratio in lines}
    floor, packed_floor, mix = by_phase.get(FLOOR_PHASE), by_phase.get(PACKED_FLOOR_PHASE), by_phase.get(MIX_PHASE)
    if floor and mix:
        click.echo(f"standard mix / charge-shaped floor: {mix / floor:.2f} (target: at most 2.0)")
    if packed_floor and mix:
        click.echo(f"standard mix / floor fed the packed request: {mix / packed_floor:.2f} (no target)")


def write_rows(rows: Sequence[msgspec.Struct], json_path: Path) -> None:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_bytes(msgspec.json.encode(rows))
    click.echo(f"written: {json_path}")


if __name__ == "__main__":
    main()
