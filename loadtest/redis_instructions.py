"""python -m loadtest.redis_instructions: the machine instructions Redis spends per `charge` call,
counted by valgrind's callgrind, per request type, against the reserve-shaped baseline and the
charge-shaped floor counted in the same run (the phases of loadtest.redis_time).

Time on these shared two-core machines moves by 10 to 20 % from run to run; an instruction count
moves by a few parts in ten thousand, whatever else the machine does, so a change of 1 % shows. It is
the measure the charge path is tuned by; redis_time still gives the time. Each figure is the median
of --rounds whole runs (3), printed with the lowest and highest.
The count is the whole server's while a phase runs: the FCALLs, reading them off the socket, the
replies and the AOF. Phases run in pipelines of 500 as in redis_time; "standard mix" weighs the
types as docs/performance.md's standard mix does (a session: INITIAL, 3 UPDATE, TERMINATE; one request in ten an SMS
EVENT). Needs valgrind (Debian's package: valgrind, callgrind_control)."""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import click
import msgspec
import redis

from creditd.store.embedded import EmbeddedRedis
from loadtest.redis_time import BASELINE_PHASE, FLOOR_PHASE, MIX_PHASE, piped, prepare, print_table, write_rows

DUMP_WAIT_S = 30.0
START_TIMEOUT_S = 120.0


class TypeInstructions(msgspec.Struct):
    phase: str
    calls: int
    instructions_per_call: float  # the median of the rounds
    ratio_to_baseline: float
    lowest: float = 0.0  # of the rounds
    highest: float = 0.0


class CallgrindRedis(EmbeddedRedis):
    """The embedded server run under callgrind, counting from the start; `count` zeroes the counters,
    runs a phase and returns the instructions the server spent on it."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir, start_timeout_s=START_TIMEOUT_S)
        self.dump_prefix = data_dir / "callgrind.out"

    def command_line(self, binary: Path) -> list[str]:
        return [
            shutil.which("valgrind") or "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={self.dump_prefix}.%p",
            *super().command_line(binary),
        ]

    def _control(self, flag: str) -> None:
        assert self.process is not None
        subprocess.run(["callgrind_control", flag, str(self.process.pid)], capture_output=True, check=True, timeout=60)

    def count(self, client: redis.Redis, words: list[tuple[object, ...]]) -> int:
        dumps_before = set(self.dump_prefix.parent.glob(f"{self.dump_prefix.name}.*"))
        self._control("-z")
        piped(client, words)
        self._control("-d")
        deadline = time.monotonic() + DUMP_WAIT_S
        while time.monotonic() < deadline:
            for path in set(self.dump_prefix.parent.glob(f"{self.dump_prefix.name}.*")) - dumps_before:
                match = re.search(r"^(?:summary|totals): (\d+)$", path.read_text(), re.M)
                if match:
                    return int(match.group(1))
            time.sleep(0.1)
        raise TimeoutError("callgrind wrote no dump")


def require_callgrind() -> None:
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise click.ClickException("valgrind is not installed (Debian: apt-get install valgrind)")


def weighted_mix(figures: dict[str, float]) -> float:
    session = (figures["INITIAL"] + 3 * figures["UPDATE"] + figures["TERMINATE"]) / 5
    return 0.9 * session + 0.1 * figures["EVENT"]


def measure(session_count: int, bundles: Sequence[str] = ()) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="creditd-instructions-") as work, CallgrindRedis(Path(work)) as server:
        client = redis.Redis.from_url(server.url)
        _, phases = prepare(client, session_count, bundles)
        figures = {name: server.count(client, words) / session_count for name, words in phases}
        client.close()
    figures["standard mix"] = weighted_mix(figures)
    return figures


@click.command()
@click.option("--sessions", "session_count", default=400, show_default=True, help="calls per phase")
@click.option(
    "--rounds", default=3, show_default=True, type=click.IntRange(1, 9), help="whole runs; each figure is their median"
)
@click.option(
    "--bundles",
    default="",
    show_default=True,
    help="catalogue bundle ids each account buys before the phases, comma-separated (e.g. "
    "data_5gb,voice_100min,sms_50): a line with bundles, whose buckets every call reads",
)
@click.option(
    "--json", "json_path", type=click.Path(path_type=Path), default=Path("loadtest/results/redis_instructions.json")
)
def main(session_count: int, rounds: int, bundles: str, json_path: Path) -> None:
    require_callgrind()
    bundle_ids = tuple(bundle_id for bundle_id in bundles.split(",") if bundle_id)
    runs = [measure(session_count, bundle_ids) for _ in range(rounds)]
    rows = []
    baseline = statistics.median(run[BASELINE_PHASE] for run in runs)
    for name in runs[0]:
        values = [run[name] for run in runs]
        median = statistics.median(values)
        # all three rounded alike (round is monotonic): with rounds less than an instruction apart, the
        # median rounded alone could fall outside the unrounded lowest and highest
        low, high = round(min(values)), round(max(values))
        rows.append(TypeInstructions(name, session_count, round(median), round(median / baseline, 2), low, high))
    # exact ratios: the mix / floor line divides two of them, and rounded ones can move it by 0.01
    lines = [(row.phase, f"{row.instructions_per_call:,.0f}", row.instructions_per_call / baseline) for row in rows]
    print_table(lines, "instructions per call")
    if rounds > 1:
        mixes = [run[MIX_PHASE] / run[FLOOR_PHASE] for run in runs]
        spread = ", ".join(f"{row.phase} {row.lowest:,.0f}-{row.highest:,.0f}" for row in rows)
        click.echo(f"{rounds} rounds, each figure their median; lowest-highest: {spread}")
        click.echo(f"standard mix / floor by round: {', '.join(f'{mix:.2f}' for mix in mixes)}")
    write_rows(rows, json_path)


if __name__ == "__main__":
    main()
