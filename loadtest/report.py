"""Latency histograms (HDR), results of one phase, and the final table and JSON."""

from __future__ import annotations

import collections
import subprocess
import time
from pathlib import Path

import msgspec
from hdrh.histogram import HdrHistogram

LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS = 1, 60_000_000, 3
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
TOP_UP = "TOPUP"  # a top-up's result name (loadtest/traffic.py top_up_loop)


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


class PhaseResult(msgspec.Struct):
    name: str
    seconds: float
    rpcs: int
    charges: int
    latency_us: dict[str, int]
    results: dict[str, int]
    errors: dict[str, int]
    # CPU µs per RPC of each role (load generator, server, redis) when the run started them.
    cpu_us_per_rpc: dict[str, float] = msgspec.field(default_factory=dict)
    # creditd's own histogram over the phase (loadtest/server_latency.py), when the run started it.
    server_latency: dict[str, float] = msgspec.field(default_factory=dict)
    # loadtest.cpu.reference_work_ms just before the phase: how fast the machine ran then.
    reference_work_ms: float = 0.0

    @property
    def top_ups(self) -> int:
        return self.results.get(TOP_UP, 0)

    @property
    def answered(self) -> int:
        """The RPCs the server answered: the phase's Charge or ChargeBatch RPCs and its top-ups (both
        sides of a comparison play the same top-ups; CPU per RPC is over all of them)."""
        return self.rpcs + self.top_ups

    @property
    def rpcs_per_s(self) -> float:
        return self.rpcs / self.seconds if self.seconds else 0.0

    @property
    def charges_per_s(self) -> float:
        return self.charges / self.seconds if self.seconds else 0.0


class Recorder:
    """What one phase saw: latencies per RPC, answers by result, errors by kind."""

    def __init__(self) -> None:
        self.histogram = new_histogram()
        self.rpcs = 0
        self.charges = 0
        self.results: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()

    def record(self, latency_s: float, charges: int) -> None:
        self.histogram.record_value(max(LOWEST_US, min(HIGHEST_US, int(latency_s * 1_000_000))))
        self.rpcs += 1
        self.charges += charges

    def result(self, name: str) -> None:
        self.results[name] += 1

    def error(self, name: str) -> None:
        self.errors[name] += 1

    def finish(self, name: str, seconds: float) -> PhaseResult:
        latency = {f"p{p:g}": self.histogram.get_value_at_percentile(p) for p in PERCENTILES}
        latency["max"] = self.histogram.get_max_value()
        return PhaseResult(name, seconds, self.rpcs, self.charges, latency, dict(self.results), dict(self.errors))


class Report(msgspec.Struct):
    settings: dict[str, object]
    phases: list[PhaseResult]
    ratios: dict[str, float]
    memory: dict[str, int]
    audit_violations: list[str]
    audit_summary: dict[str, int]


def ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 3) if denominator else 0.0


def table(report: Report) -> str:
    header = f"{'phase':34} {'rpc/s':>9} {'charges/s':>10} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9}"
    lines = [f"{header}  errors"]
    for phase in report.phases:
        ms = {key: value / 1000 for key, value in phase.latency_us.items()}
        errors = sum(phase.errors.values())
        lines.append(
            f"{phase.name:34} {phase.rpcs_per_s:9.0f} {phase.charges_per_s:10.0f} {ms['p50']:8.2f} {ms['p90']:8.2f} "
            f"{ms['p99']:8.2f} {ms['p99.9']:9.2f}  {errors}"
        )
    cpu = [phase for phase in report.phases if phase.cpu_us_per_rpc]
    if cpu:
        header = f"{'CPU µs per rpc':34} {'load generator':>15} {'server':>8} {'redis':>8} {'reference ms':>13}"
        lines += ["", header]
        for phase in cpu:
            used = phase.cpu_us_per_rpc
            lines.append(
                f"{phase.name:34} {used['load generator']:15.0f} {used['server']:8.0f} {used.get('redis', 0.0):8.0f}"
                f" {phase.reference_work_ms:13.0f}"
            )
        references = report.settings.get("reference work ms of each phase")
        if isinstance(references, list) and references:
            lines.append(
                f"reference ms: the same fixed work before each phase, {min(references):.0f}-{max(references):.0f} "
                f"over the run's {len(references)} (loadtest/cpu.py; the lower, the faster the machine ran)"
            )
    own = [phase for phase in report.phases if phase.server_latency]
    if own:
        lines += ["", f"{'creditd handler in to out':34} {'within 10 ms':>13} {'p99 at most ms':>15}"]
        for phase in own:
            latency = phase.server_latency
            lines.append(f"{phase.name:34} {latency['handled within 10 ms']:13.4f} {latency['p99 at most ms']:15g}")
    lines.append("")
    per_round = report.settings.get("ratios of each round")
    for name, value in report.ratios.items():
        spread = ""
        if isinstance(per_round, list) and len(per_round) > 1:
            spread = "  (rounds: " + ", ".join(f"{found[name]:.3f}" for found in per_round) + ")"
        lines.append(f"{name:44} {value:8.3f}{spread}")
    lines += [f"{name:44} {value:8d}" for name, value in report.memory.items()]
    if report.audit_violations:
        lines.append(f"audit: {len(report.audit_violations)} VIOLATIONS: " + "; ".join(report.audit_violations[:5]))
    elif report.audit_summary:
        lines.append(f"audit: clean {report.audit_summary}")
    else:
        lines.append("audit: not run (a --target without --redis)")
    return "\n".join(lines)


def run_identity() -> dict[str, object]:
    """The commit the run measured (with '+dirty' for uncommitted changes) and when."""

    def git(*arguments: str) -> str:
        try:
            return subprocess.run(["git", *arguments], capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no"):
        commit += "+dirty"
    return {"commit": commit, "written_at": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())}


def write_json(report: object, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2))


def figures(report: Report) -> dict[str, float]:
    """Every figure of a run by a stable name: per phase its rates and latency percentiles, then the
    ratios and memory figures."""
    found: dict[str, float] = {}
    for phase in report.phases:
        found[f"{phase.name}: rpc/s"] = phase.rpcs_per_s
        found[f"{phase.name}: charges/s"] = phase.charges_per_s
        for percentile, value_us in phase.latency_us.items():
            found[f"{phase.name}: {percentile} ms"] = value_us / 1000
    found.update(report.ratios)
    found.update({name: float(value) for name, value in report.memory.items()})
    return found


def comparison(report: Report, base: Report) -> str:
    """The ratio of every figure to the same figure of a previous run (rates: higher is better;
    latencies and bytes: lower is better)."""
    now, then = figures(report), figures(base)
    lines = [f"compared with {base.settings.get('commit', '?')} ({base.settings.get('written_at', '?')})"]
    lines.append(f"{'figure':60} {'base':>10} {'now':>10} {'now/base':>9}")
    for name, value in now.items():
        if name in then:
            lines.append(f"{name:60} {then[name]:10.2f} {value:10.2f} {ratio(value, then[name]):9.3f}")
    missing = sorted(set(then) - set(now))
    if missing:
        lines.append(f"not in this run: {', '.join(missing)}")
    return "\n".join(lines)


def read_report(path: Path) -> Report:
    return msgspec.json.decode(path.read_bytes(), type=Report)
