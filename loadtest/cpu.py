"""Where the cores went during a phase: CPU seconds of process trees read from /proc (Linux), and of
this process from getrusage. On a machine with fewer cores than busy processes, throughput alone
hides which one ran out of CPU first; cores used per role shows it."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterable
from pathlib import Path

import msgspec

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
# /proc/<pid>/stat fields after "(comm)", from 0: the process' own user and system time, its reaped
# children's (cutime, cstime), its parent
UTIME_FIELD, STIME_FIELD, CUTIME_FIELD, CSTIME_FIELD, PARENT_FIELD = 11, 12, 13, 14, 1


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone since the listing
        return None
    return text[text.rindex(")") + 2 :].split()


def _parents() -> dict[int, int]:
    """Every live process and its parent, from one listing of /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = int(fields[PARENT_FIELD])
    return parents


def _tree(pid: int, parents: dict[int, int], excluded: frozenset[int]) -> list[int]:
    members, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier and child not in excluded]
        members += frontier
    return members


def cpu_seconds(pids: Iterable[int], excluding: Iterable[int] = ()) -> float:
    """User + system CPU seconds of these processes and all their descendants alive now but those
    `excluding` (and theirs), and of the children they have reaped: Redis forks a child for each AOF
    rewrite (every few seconds under loadtest's batch phase), which a phase would otherwise count
    only while it lives, and then take away again."""
    parents, excluded = _parents(), frozenset(excluding)
    total_ticks = 0
    for member in (member for pid in pids for member in _tree(pid, parents, excluded)):
        fields = _stat(member)
        if fields is not None:
            total_ticks += sum(int(fields[field]) for field in (UTIME_FIELD, STIME_FIELD, CUTIME_FIELD, CSTIME_FIELD))
    return total_ticks / CLOCK_TICKS_PER_S


_CPUCLOCK_SCHED = 2  # Linux: a process' CPU clock counting its run time on any CPU


def process_cpu_s(pid: int) -> float:
    """CPU seconds so far of one process, all its threads, not its children, to the nanosecond: the
    kernel's CPU-time clock of that process (the clock id glibc's clock_getcpuclockid makes for it).
    For small figures (an idle process spends a few ms a second) where /proc's ticks of 10 ms are
    too coarse."""
    return time.clock_gettime_ns(((~pid) << 3) | _CPUCLOCK_SCHED) / 1e9


def server_and_redis_cpu_s(server_pid: int, redis_pid: int) -> tuple[float, float]:
    """CPU seconds so far of a server's process tree without its Redis (a child when embedded), and
    of that Redis (0 when redis_pid is 0: a server without one)."""
    if not redis_pid:
        return cpu_seconds([server_pid]), 0.0
    return cpu_seconds([server_pid], excluding=[redis_pid]), cpu_seconds([redis_pid])


# The fixed work of reference_work_ms: some 30 ms of one core here when the machine runs at its best.
REFERENCE_ITERATIONS = 1_000_000


def reference_work_ms() -> float:
    """CPU ms this process spends on a fixed piece of pure-Python work: how fast the machine runs at
    this moment. On a shared virtual machine three times this work took 228 to 372 ms minutes apart, and
    this 29 to 53 ms within one run: more than most changes move a CPU-per-operation figure, so each
    phase records it beside its own."""
    started, total = time.process_time(), 0
    for number in range(REFERENCE_ITERATIONS):
        total += number
    assert total == REFERENCE_ITERATIONS * (REFERENCE_ITERATIONS - 1) // 2
    return round((time.process_time() - started) * 1000, 1)


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CoresUsed(msgspec.Struct, frozen=True):
    load_generator: float
    creditd: float
    redis: float

    def __str__(self) -> str:
        return f"{self.load_generator:.1f} / {self.creditd:.1f} / {self.redis:.1f}"


class CpuMeter:
    """Cores used by the load generator (this process), creditd and Redis between start and stop;
    creditd's without Redis' when Redis is its child (the embedded server)."""

    def __init__(self, creditd_pids: list[int], redis_pids: list[int]) -> None:
        self._creditd_pids, self._redis_pids = creditd_pids, redis_pids
        self._started = self._sample()

    def _sample(self) -> tuple[float, float, float, float]:
        own = own_cpu_seconds()
        creditd = cpu_seconds(self._creditd_pids, excluding=self._redis_pids)
        return time.perf_counter(), own, creditd, cpu_seconds(self._redis_pids)

    def stop(self) -> CoresUsed:
        (wall0, own0, creditd0, redis0), (wall1, own1, creditd1, redis1) = self._started, self._sample()
        seconds = max(wall1 - wall0, 1e-9)
        return CoresUsed(
            round((own1 - own0) / seconds, 2),
            round((creditd1 - creditd0) / seconds, 2),
            round((redis1 - redis0) / seconds, 2),
        )
