"""The load generators run to the end by themselves on a small shape (CI smoke tests, no timing is
asserted): every phase including both baselines produces figures, no request fails, the audit of the
run is clean with nothing left reserved, and every unit is rated; a run compared with a previous one
prints every figure's ratio; the rating run measures the Redis time per call of each library (plain,
sample, a generated prefix table, no usage records); the Redis time run measures each request type
against the reserve-shaped baseline, with the server's CPU per call; the growth, allocators and
scaling runs measure every step and cell (growth: on the embedded server, on glibc's malloc when
asked, or on one of the operator's, named with its allocator, the preloaded jemalloc too, refusing
one that holds keys, as a whole run does; allocators: glibc's malloc and jemalloc at each account
count in each round, each server named with what it ran on, an unknown allocator refused; scaling: a
1- and a 3-primary cluster, 1 and 2 creditd processes); with rounds, the report keeps the median run
of each phase and the median of each round's ratios; the Redis phases run after a usage record in
every partition they charge (per-64-appends work amortised as in a running server), on accounts that
bought bundles, drawing on them; the serving processes' instruction counts cover the echo server,
creditd's Charges and the chf's Nchf requests, and a server that exits before serving is reported at
once; creditd's own latency per phase comes from its histogram read before and after (a worked
example of the arithmetic); a process' CPU counts the children it has reaped (a real fork that burns
CPU and is waited for) and leaves out a live one it is told to (the embedded Redis); the server-
ratio run plays the echo server and creditd in alternate slices, each side first in turn, and its
figures are each side's CPU over its own slices' RPCs (both sides play the top-ups and count them as
RPCs), recomputed here from the slices it reports; the notices run hands every notice of its burst
and of its paced run to each channel's receiver (a webhook and an SMTP server) and times their lag."""

from __future__ import annotations

import datetime
import json
import math
import shutil
import statistics
import subprocess
import sys
import time
import zoneinfo
from pathlib import Path
from typing import Any

import click
import pytest
import redis

from creditd.config.settings import load_settings
from creditd.devtools.ports import free_port
from creditd.resources import default_config_path
from creditd.store.account_record import read_account
from creditd.store.embedded import EmbeddedRedis, find_jemalloc
from loadtest.cpu import cpu_seconds
from loadtest.growth import server_description
from loadtest.redis_time import last_noon_ms, piped, prepare
from loadtest.report import PhaseResult
from loadtest.runner import median_phase, median_ratios
from loadtest.server_instructions import START_TIMEOUT_S, CountedServer
from loadtest.server_latency import phase_latency

pytestmark = pytest.mark.slow
# The phases redis_time and redis_instructions both measure, in their order.
REDIS_PHASES = [
    "baseline (reserve-shaped)",
    "charge-shaped floor",
    "floor, packed request",
    "INITIAL",
    "UPDATE",
    "TERMINATE",
    "EVENT",
    "standard mix",
]
NEEDS_VALGRIND = pytest.mark.skipif(
    shutil.which("valgrind") is None or shutil.which("callgrind_control") is None,
    reason="SKIPPED LOUDLY: valgrind is not installed (.ci/run installs Debian's valgrind)",
)


def run_report(module: str, arguments: list[str], report_path: Path, timeout_s: float = 300) -> tuple[str, list[Any]]:
    """Runs `python -m module` with its JSON report at report_path; its output and the report."""
    command = [sys.executable, "-m", module, *arguments, "--json", str(report_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    return result.stdout, json.loads(report_path.read_text())


def test_smoke_run_finishes_with_a_clean_audit(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "loadtest", "--smoke", "--json", str(report_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    report = json.loads(report_path.read_text())
    names = [phase["name"] for phase in report["phases"]]
    assert names[0].startswith("echo") and names[-1].startswith("raw pipelined FCALL")
    assert all(phase["charges"] > 0 and not phase["errors"] for phase in report["phases"])
    assert not any("RATING_FAILED" in phase["results"] for phase in report["phases"])  # every unit was rated
    assert report["audit_violations"] == [] and report["audit_summary"]["total_reserved"] == 0
    assert "unary Charge / echo unary (target >= 0.7)" in report["ratios"]
    # the harness' own latency at creditd's half-load rate, beside creditd's
    assert "echo unary at that rate" in names and "p99 ms of echo at that rate (the harness' own)" in report["ratios"]
    # creditd's own histogram, read around each of its phases (the echo server has none)
    own = {phase["name"]: phase["server_latency"] for phase in report["phases"]}
    assert own["echo unary (gRPC floor)"] == {} and 0 < own["creditd unary at half max"]["handled within 10 ms"] <= 1
    assert own["creditd ChargeBatch (20)"]["p99 at most ms"] > 0
    rates = {phase["name"]: phase["rpcs"] / phase["seconds"] for phase in report["phases"]}
    assert 0.5 < rates["echo unary at that rate"] / rates["creditd unary at half max"] < 1.5  # paced alike
    assert report["memory"]["redis bytes per open session"] > 0
    cpu = {phase["name"]: phase["cpu_us_per_rpc"] for phase in report["phases"] if phase["cpu_us_per_rpc"]}
    assert cpu["echo unary (gRPC floor)"]["server"] > 0 and cpu["creditd unary Charge"]["redis"] > 0
    # issue #36's CPU targets, each from its phases' CPU table
    server_ratio = report["ratios"]["server CPU per unary Charge / echo's per RPC (target <= 1.25)"]
    assert server_ratio == round(cpu["creditd unary Charge"]["server"] / cpu["echo unary (gRPC floor)"]["server"], 3)
    # every phase played its top-ups, the echo server's too, each counted as an RPC answered (in the
    # batch phase as a charge)
    assert all(phase["results"].get("TOPUP", 0) > 0 for phase in report["phases"] if phase["cpu_us_per_rpc"])
    batch = next(phase for phase in report["phases"] if phase["name"] == "creditd ChargeBatch (20)")
    top_ups = batch["results"]["TOPUP"]
    batch_cpu = (batch["cpu_us_per_rpc"]["server"] + batch["cpu_us_per_rpc"]["redis"]) * (batch["rpcs"] + top_ups)
    batch_cpu /= batch["charges"] + top_ups
    assert report["ratios"]["ChargeBatch server + Redis CPU µs per charge (target <= 120)"] == round(batch_cpu, 1)
    half = cpu["creditd unary at half max"]["server"] / cpu["echo unary at that rate"]["server"]
    assert report["ratios"]["server CPU per unary Charge / echo's per RPC, at half load"] == round(half, 3)
    # how fast the machine ran: the fixed work timed before each phase the CPU table shows
    references = [phase["reference_work_ms"] for phase in report["phases"] if phase["cpu_us_per_rpc"]]
    assert len(references) == len(cpu) and all(reference > 0 for reference in references)
    assert len(report["settings"]["reference work ms of each phase"]) == len(cpu)
    assert "reference ms: the same fixed work before each phase" in result.stdout
    assert report["settings"]["commit"] and report["settings"]["written_at"]

    # a second run compared with the first prints every figure's ratio to it
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtest",
            "--smoke",
            "--json",
            str(tmp_path / "again.json"),
            "--compare",
            str(report_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stdout + again.stderr[-3000:]
    assert f"compared with {report['settings']['commit']}" in again.stdout
    assert "creditd unary Charge: charges/s" in again.stdout and "now/base" in again.stdout


def test_a_run_starts_creditd_on_the_operators_server_if_it_is_empty(tmp_path: Path) -> None:
    arguments = ["--smoke", "--mode", "unary", "--no-baselines"]
    with EmbeddedRedis(tmp_path / "theirs") as server, redis.Redis.from_url(server.url) as client:
        client.set("their:key", "kept")
        command = [sys.executable, "-m", "loadtest", *arguments, "--redis", server.url]
        refused = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert refused.returncode == 2 and "not empty (1 keys)" in refused.stderr, refused.stderr[-3000:]
        assert server.password not in refused.stderr
        client.delete("their:key")
        _, report = run_report("loadtest", [*arguments, "--redis", server.url], tmp_path / "report.json")
        assert client.dbsize() > 0  # the run's accounts went there
    cpu = {phase["name"]: phase["cpu_us_per_rpc"] for phase in report["phases"]}
    # that server's own CPU, found through its pid on this machine
    assert cpu["creditd unary Charge"]["server"] > 0 and cpu["creditd unary Charge"]["redis"] > 0
    assert report["audit_violations"] == [] and report["audit_summary"]["accounts"] > 0


def test_rating_run_measures_every_library(tmp_path: Path) -> None:
    report_path = tmp_path / "rating.json"
    arguments = ["--prefixes", "2000", "--duration", "0.3", "--rounds", "1", "--json", str(report_path)]
    result = subprocess.run(
        [sys.executable, "-m", "loadtest.rating", *arguments], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    runs = json.loads(report_path.read_text())
    names = ["plain (no destinations)", "sample (10 prefixes)", "2000 prefixes", "sample without usage records"]
    assert [run["name"] for run in runs] == names
    for run in runs:
        assert run["usec_per_call"] > 0 and run["charges"] > 0 and set(run["results"]) == {"SUCCESS"}, run
    assert all(run["usage_bytes_per_record"] > 0 for run in runs[:3]) and runs[3]["usage_bytes_per_record"] == 0


def test_redis_time_run_measures_every_request_type_against_the_baseline(tmp_path: Path) -> None:
    arguments = ["--rounds", "1", "--sessions", "200", "--mix-duration", "0.3"]
    _, rows = run_report("loadtest.redis_time", arguments, tmp_path / "redis_time.json")
    assert [row["phase"] for row in rows] == REDIS_PHASES
    assert all(row["usec_per_call"] > 0 for row in rows) and rows[0]["ratio_to_baseline"] == 1.0
    # the server's CPU per call of each piped phase, from /proc in ticks of 10 ms (a phase of 200
    # calls may read 0); the standard mix's calls are not counted
    piped_phases = [row for row in rows if row["phase"] != "standard mix"]
    assert all(row["redis_cpu_us_per_call"] >= 0 for row in piped_phases) and rows[-1]["redis_cpu_us_per_call"] == 0
    assert sum(row["redis_cpu_us_per_call"] for row in piped_phases) > 0


@NEEDS_VALGRIND
def test_redis_instructions_run_counts_every_request_type_against_the_baseline(tmp_path: Path) -> None:
    arguments = ["--sessions", "50", "--rounds", "2"]
    output, report = run_report("loadtest.redis_instructions", arguments, tmp_path / "redis_instructions.json")
    rows = {row["phase"]: row for row in report}
    assert list(rows) == REDIS_PHASES
    assert rows["baseline (reserve-shaped)"]["ratio_to_baseline"] == 1.0
    # each phase counted its own calls: a charge of any type does more than the reserve-shaped function
    assert all(rows[name]["ratio_to_baseline"] > 1.5 for name in ("INITIAL", "UPDATE", "TERMINATE", "EVENT"))
    # two rounds: each figure their median, between the lowest and highest
    assert all(row["lowest"] <= row["instructions_per_call"] <= row["highest"] for row in rows.values())
    assert "standard mix / floor by round: " in output
    # the headline ratio is the figures' own, not a ratio of two rounded ratios
    exact = rows["standard mix"]["instructions_per_call"] / rows["charge-shaped floor"]["instructions_per_call"]
    assert f"standard mix / charge-shaped floor: {exact:.2f} (target" in output, output
    packed = rows["standard mix"]["instructions_per_call"] / rows["floor, packed request"]["instructions_per_call"]
    assert f"standard mix / floor fed the packed request: {packed:.2f} (no target)" in output, output


def test_the_redis_phases_run_warmed_up_on_accounts_with_bundles(tmp_path: Path) -> None:
    bundles = ("data_5gb", "voice_100min", "sms_50")
    with EmbeddedRedis(tmp_path) as server, redis.Redis.from_url(server.url) as client:
        calls, phases = prepare(client, 40, bundles)
        key = calls.keys.account("66900000001")
        # a bucket per bundle, named '<bundle_id>.<ledger seq>'
        bought = {name: text for name, text in read_account(client, key).items() if name.startswith("bucket:")}
        assert sorted(name.removeprefix("bucket:").split(".")[0] for name in bought) == sorted(bundles)
        # every account's partition has its first usage record since the library was loaded already
        assert all(client.xlen(calls.keys.usage(f"6690{n:07d}")) > 0 for n in range(200))
        for _, words in phases:
            piped(client, words)  # every call succeeds
        after = read_account(client, key)
        (data,) = [name for name in bought if name.startswith("bucket:data_5gb.")]
        # the account's data sessions drew on its data bundle
        assert int(after[data].split("|")[1]) < int(bought[data].split("|")[1])


def test_the_redis_phases_carry_the_last_noon_in_the_plan_time_zone() -> None:
    settings = load_settings(default_config_path())
    noon_ms = last_noon_ms(settings)
    noon = datetime.datetime.fromtimestamp(noon_ms / 1000, zoneinfo.ZoneInfo(settings.plans["standard"].time_zone))
    assert (noon.hour, noon.minute, noon.second) == (12, 0, 0)
    assert 0 <= time.time() * 1000 - noon_ms < 86_400_000  # the last one, not the next


@NEEDS_VALGRIND
def test_a_counted_server_that_exits_before_serving_is_reported_at_once(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(
        click.ClickException, match=r"^nothing exited with 1 before listening on port \d+ \(see .*nothing.log\)$"
    ):
        CountedServer("nothing", ["-m", "no_such_module"], tmp_path, free_port())
    assert time.monotonic() - started < START_TIMEOUT_S / 2  # not after the whole time-out
    assert "No module named no_such_module" in (tmp_path / "nothing.log").read_text()


@NEEDS_VALGRIND
def test_server_instructions_run_counts_the_echo_creditd_and_the_chf(tmp_path: Path) -> None:
    arguments = ["--charges", "20", "--rounds", "1"]
    output, report = run_report("loadtest.server_instructions", arguments, tmp_path / "server.json", 600)
    rows = {row["server"]: row for row in report}
    assert list(rows) == ["echo", "echo+redis", "creditd", "creditd batch", "creditd data", "chf"]
    # each counted its own requests: a Redis round trip costs the echo something, a charge more than
    # that, as does an Nchf request, part of whose work is on granian's own thread
    assert rows["echo+redis"]["main_thread_per_rpc"] > 1.02 * rows["echo"]["main_thread_per_rpc"]
    assert rows["creditd"]["main_thread_per_rpc"] > 1.3 * rows["echo+redis"]["main_thread_per_rpc"]
    assert rows["creditd"]["main_thread_per_rpc"] > 1.5 * rows["echo"]["main_thread_per_rpc"]
    assert rows["chf"]["main_thread_per_rpc"] > rows["echo"]["main_thread_per_rpc"]
    assert rows["chf"]["other_threads_per_rpc"] > 0
    # a batched charge shares its RPC's cost with the 99 others, but is still more than nothing
    assert 0.05 * rows["creditd"]["main_thread_per_rpc"] < rows["creditd batch"]["main_thread_per_rpc"]
    assert rows["creditd batch"]["main_thread_per_rpc"] < 0.7 * rows["creditd"]["main_thread_per_rpc"]
    assert rows["creditd batch"]["charges"] == 500
    # creditd's second count is read from its second dump: two counts never agree to the instruction
    assert rows["creditd data"]["main_thread_per_rpc"] != rows["creditd"]["main_thread_per_rpc"]
    lines = ("creditd / echo, main thread: ", "chf / creditd data, main thread: ", "chf / creditd data, all")
    lines += ("echo+redis / echo, main thread: ", "creditd / echo+redis, main thread: ")
    for line in (*lines, "creditd batched charge / unary Charge, main thread: "):
        assert line in output, output


def test_growth_run_measures_each_step(tmp_path: Path) -> None:
    report_path = tmp_path / "growth.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtest.growth",
            "--steps",
            "100,300",
            "--session-steps",
            "500",
            "--duration",
            "0.5",
            "--embedded-allocator",
            "libc",
            "--json",
            str(report_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    rows = json.loads(report_path.read_text())
    assert [(row["accounts"], row["open_sessions"]) for row in rows] == [(100, 0), (300, 0), (300, 500)]
    # growth names what really allocated: glibc's malloc when told, though the default finds jemalloc
    assert all(row["server"].endswith(", malloc libc") for row in rows), rows[0]["server"]
    with EmbeddedRedis(tmp_path / "default") as server, redis.Redis.from_url(server.url) as client:
        allocator = "jemalloc (preloaded)" if find_jemalloc() is not None else "libc"
        assert server_description(client).endswith(f", malloc {allocator}"), server_description(client)
    assert all(row["charges_per_s"] > 0 and row["used_memory_bytes"] > 0 for row in rows)
    assert all(row["redis_usec_per_call"] > 0 for row in rows)
    assert rows[1]["keys"] > rows[0]["keys"]
    # a session's bytes measured over the sessions alone: a session key, a member of its account's set
    # and of the deadline index; far less than the step's whole growth would give with traffic in it
    assert [row["bytes_per_new_session"] > 0 for row in rows] == [False, False, True]
    assert 200 < rows[2]["bytes_per_new_session"] < 2000


def growth_on(url: str, report_path: Path) -> subprocess.CompletedProcess[str]:
    command = ["loadtest.growth", "--steps", "100", "--duration", "0.5", "--redis", url, "--json", str(report_path)]
    return subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True, timeout=300)


def test_allocators_run_measures_every_allocator_at_every_count_in_every_round(tmp_path: Path) -> None:
    report_path = tmp_path / "allocators.json"
    command = ["loadtest.allocators", "--accounts", "100,50", "--rounds", "2", "--duration", "0.3"]
    result = subprocess.run(
        [sys.executable, "-m", *command, "--json", str(report_path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    cells = json.loads(report_path.read_text())
    assert [(cell["allocator"], cell["accounts"]) for cell in cells] == [
        ("libc", 50),
        ("libc", 100),
        ("jemalloc", 50),
        ("jemalloc", 100),
    ]
    jemalloc = "jemalloc (preloaded)" if find_jemalloc() is not None else "libc"  # each server says what it ran on
    assert [cell["server"].split(", malloc ", 1)[1] for cell in cells] == ["libc", "libc", jemalloc, jemalloc]
    assert all(len(cell["rounds"]) == 2 and all(figure > 0 for figure in cell["rounds"]) for cell in cells)
    assert all(cell["redis_cpu_usec_per_call"] == statistics.median(cell["rounds"]) for cell in cells)
    refused = subprocess.run(
        [sys.executable, "-m", "loadtest.allocators", "--allocators", "libc,tcmalloc"], capture_output=True, text=True
    )
    assert refused.returncode == 2 and "unknown allocator 'tcmalloc'" in refused.stderr, refused.stderr


def test_idle_run_measures_both_processes_with_and_without_the_sweeper(tmp_path: Path) -> None:
    output, cells = run_report(
        "loadtest.idle", ["--rounds", "2", "--duration", "1.5", "--settle", "0"], tmp_path / "idle.json"
    )
    assert [cell["config"] for cell in cells] == ["shipped", "sweeper off"]
    for cell in cells:
        assert len(cell["creditd_rounds"]) == len(cell["redis_rounds"]) == 2
        assert cell["creditd_cpu_ms_per_s"] == statistics.median(cell["creditd_rounds"])
        assert cell["redis_cpu_ms_per_s"] == statistics.median(cell["redis_rounds"])
        assert all(0 <= figure < 1000 for figure in (*cell["creditd_rounds"], *cell["redis_rounds"]))
    # the shipped config's sweeper claims and reads 256 partitions' indexes a second; with it off
    # the process wakes only for the health check: over two rounds the sweeping one spent more
    shipped, off = cells
    assert sum(shipped["creditd_rounds"]) + sum(shipped["redis_rounds"]) > sum(off["creditd_rounds"]) + sum(
        off["redis_rounds"]
    ), output
    assert "shipped: creditd" in output and "sweeper off: creditd" in output


def test_server_ratio_alternates_the_sides_and_pools_each_sides_own_slices(tmp_path: Path) -> None:
    output, found = run_report("loadtest.server_ratio", ["--pairs", "3", "--slice", "0.5"], tmp_path / "ratio.json")
    slices = found["slices"]
    # a pair is one slice of each side, the first side alternating: echo first, then creditd first
    assert [one["side"] for one in slices] == ["echo", "creditd", "creditd", "echo", "echo", "creditd"]
    for one in slices:
        assert one["rpcs"] > 0 and one["server_cpu_s"] > 0 and one["errors"] == 0, one
        # only creditd's side has a Redis, counted apart from it, and pipelines to it (its /metrics)
        assert (one["redis_cpu_s"] > 0) == (one["side"] == "creditd"), one
        assert (one["redis_pipelines"] > 0) == (one["side"] == "creditd"), one
        assert one["redis_pipelines"] <= one["redis_pipeline_calls"], one

    def per_rpc_us(counted: list[dict[str, Any]], side: str, top_ups: bool = True) -> float:
        mine = [one for one in counted if one["side"] == side]
        answered = sum(one["rpcs"] + (one["top_ups"] if top_ups else 0) for one in mine)
        return sum(one["server_cpu_s"] for one in mine) / answered * 1_000_000

    # both sides played the traffic's top-ups, counted as RPCs answered; ratio_per_charge leaves them out
    assert all(one["top_ups"] > 0 for one in slices), slices
    per_charge = per_rpc_us(slices, "creditd", top_ups=False) / per_rpc_us(slices, "echo", top_ups=False)
    assert found["ratio_per_charge"] == pytest.approx(per_charge, abs=5e-4)
    assert found["creditd_cpu_us_per_rpc"] == pytest.approx(per_rpc_us(slices, "creditd"), abs=0.05)
    assert found["echo_cpu_us_per_rpc"] == pytest.approx(per_rpc_us(slices, "echo"), abs=0.05)
    assert found["ratio"] == pytest.approx(per_rpc_us(slices, "creditd") / per_rpc_us(slices, "echo"), abs=5e-4)
    pairs = [slices[index : index + 2] for index in (0, 2, 4)]
    expected = [per_rpc_us(pair, "creditd") / per_rpc_us(pair, "echo") for pair in pairs]
    assert found["pair_ratios"] == pytest.approx(expected, abs=5e-4)
    calls = sum(one["redis_pipeline_calls"] for one in slices) / sum(one["redis_pipelines"] for one in slices)
    assert found["calls_per_redis_pipeline"] == pytest.approx(calls, abs=0.005)
    assert found["median_pair_ratio"] == pytest.approx(statistics.median(found["pair_ratios"]), abs=5e-4)
    assert "server CPU per unary Charge / echo's per RPC (target <= 1.25)" in output, output


def test_server_ratio_with_the_floor_rotates_three_sides_and_counts_the_floors_redis_apart(tmp_path: Path) -> None:
    output, found = run_report(
        "loadtest.server_ratio", ["--pairs", "3", "--slice", "0.5", "--floor"], tmp_path / "ratio.json"
    )
    slices, floor = found["slices"], "echo+redis"
    # a round is one slice of each side, the first rotating, so each side takes each place once
    assert [one["side"] for one in slices] == [
        *("echo", floor, "creditd"),
        *(floor, "creditd", "echo"),
        *("creditd", "echo", floor),
    ]
    for one in slices:
        assert one["rpcs"] > 0 and one["server_cpu_s"] > 0 and one["errors"] == 0, one
        # the floor has a Redis of its own (one PING a Charge), counted apart as creditd's is; no pipelines
        assert (one["redis_cpu_s"] > 0) == (one["side"] != "echo"), one
        assert (one["redis_pipelines"] > 0) == (one["side"] == "creditd"), one

    def per_rpc_us(counted: list[dict[str, Any]], side: str, field: str = "server_cpu_s") -> float:
        mine = [one for one in counted if one["side"] == side]
        return sum(one[field] for one in mine) / sum(one["rpcs"] + one["top_ups"] for one in mine) * 1_000_000

    assert found["floor_cpu_us_per_rpc"] == pytest.approx(per_rpc_us(slices, floor), abs=0.05)
    assert found["floor_redis_cpu_us_per_rpc"] == pytest.approx(per_rpc_us(slices, floor, "redis_cpu_s"), abs=0.05)
    assert found["floor_ratio"] == pytest.approx(per_rpc_us(slices, floor) / per_rpc_us(slices, "echo"), abs=5e-4)
    creditd_over_floor = per_rpc_us(slices, "creditd") / per_rpc_us(slices, floor)
    assert found["creditd_over_floor"] == pytest.approx(creditd_over_floor, abs=5e-4)
    rounds = [slices[index : index + 3] for index in (0, 3, 6)]
    expected = [per_rpc_us(one, "creditd") / per_rpc_us(one, "echo") for one in rounds]
    assert found["pair_ratios"] == pytest.approx(expected, abs=5e-4)
    assert f"{floor} / echo {found['floor_ratio']:.3f}" in output, output


def test_notices_run_hands_every_notice_off_on_each_channel_and_times_the_paced_ones(tmp_path: Path) -> None:
    output, found = run_report(
        "loadtest.notices",
        ["--notices", "30", "--channels", "webhook,email", "--in-flight", "4", "--paced-s", "1"],
        tmp_path / "notices.json",
    )
    assert set(found["channels"]) == {"webhook", "email"}
    for channel, figures in found["channels"].items():
        # the burst's 30, then one notice per paced top-up (paced_per_s over the 1 s run): each
        # handed off once, by the receiver's answer, which the run counts
        assert figures["handed_off"] == 30 + figures["paced_per_s"], (channel, figures)
        assert figures["notices_per_s"] > 0 and figures["paced_per_s"] >= 1, (channel, figures)
        assert 0 < figures["lag_p50_ms"] <= figures["lag_p99_ms"], (channel, figures)
        assert f"{channel:9}" in output and "notices/s burst" in output, output


def test_growth_runs_on_the_operators_server_if_it_is_empty(tmp_path: Path) -> None:
    report_path = tmp_path / "growth.json"
    # theirs allocates with glibc's malloc, which the row must name (creditd's default would preload jemalloc)
    theirs = EmbeddedRedis(tmp_path / "theirs", allocator="libc")
    with theirs as server, redis.Redis.from_url(server.url) as client:
        client.set("their:key", "kept")
        refused = growth_on(server.url, report_path)
        assert refused.returncode == 2 and "the server is not empty (1 keys)" in refused.stderr, refused.stderr[-3000:]
        assert client.get("their:key") == b"kept" and client.dbsize() == 1 and not report_path.exists()
        client.delete("their:key")
        result = growth_on(server.url, report_path)
        assert result.returncode == 0, result.stdout + result.stderr[-3000:]
        assert client.dbsize() > 100  # the accounts went there
    (row,) = json.loads(report_path.read_text())
    assert row["accounts"] == 100 and row["charges_per_s"] > 0 and row["redis_usec_per_call"] > 0
    assert row["server"].startswith("valkey ") and row["server"].endswith(", malloc libc"), row["server"]
    assert f"on {row['server']}" in result.stdout


def test_scaling_run_measures_every_cell(tmp_path: Path) -> None:
    report_path = tmp_path / "scaling.json"
    result = subprocess.run(
        [sys.executable, "-m", "loadtest.scaling", "--duration", "0.5", "--accounts", "50", "--json", str(report_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    rows = json.loads(report_path.read_text())
    assert [(row["primaries"], row["processes"]) for row in rows] == [(1, 1), (1, 2), (3, 1), (3, 2)]
    for row in rows:
        assert min(row["unary_charges_per_s"], row["batch_charges_per_s"], row["redis_floor_charges_per_s"]) > 0
        assert row["audit_violations"] == []
        assert row["unary_cores"]["creditd"] > 0 and row["unary_cores"]["redis"] > 0
    assert rows[0]["unary_ratio"] == 1.0


def test_rounds_keep_the_median_run_and_the_median_of_each_rounds_ratio() -> None:
    def played(name: str, rpcs: int) -> PhaseResult:
        return PhaseResult(name, 1.0, rpcs, rpcs, {"p99": rpcs}, {}, {})

    assert median_phase([played("a", 30), played("b", 10), played("c", 20)]).name == "c"
    assert median_phase([played("a", 30), played("b", 10)]).name == "b"  # the lower middle: a real run
    per_round = [{"unary": 0.5, "batch": 2.0}, {"unary": 0.7, "batch": 1.0}, {"unary": 0.6, "batch": 3.0}]
    assert median_ratios(per_round) == {"unary": 0.6, "batch": 2.0}


def test_the_servers_share_of_a_phase_comes_from_its_histogram_between_two_reads() -> None:
    before = {0.005: 100.0, 0.01: 150.0, 0.025: 200.0, math.inf: 200.0}
    # 1 000 requests in the phase: 900 within 5 ms, 80 more within 10 ms, 20 more within 25 ms
    after = {0.005: 1000.0, 0.01: 1130.0, 0.025: 1200.0, math.inf: 1200.0}
    assert phase_latency(before, after) == {"handled within 10 ms": 0.98, "p99 at most ms": 25.0}
    assert phase_latency(after, after) == {}  # no request in between


# A child forked on a line from stdin, burning 0.3 s of CPU, then waited for: as Redis' AOF rewrite.
FORK_AND_REAP = """
import os, sys, time
sys.stdin.readline()
child = os.fork()
if child == 0:
    started = time.process_time()
    while time.process_time() - started < 0.3:
        pass
    os._exit(0)
os.waitpid(child, 0)
print("reaped", flush=True)
sys.stdin.readline()
"""


def test_cpu_seconds_counts_the_children_a_process_has_reaped() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", FORK_AND_REAP], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        before = cpu_seconds([process.pid])
        process.stdin.write("fork\n")
        process.stdin.flush()
        assert process.stdout.readline() == "reaped\n"
        assert cpu_seconds([process.pid]) - before >= 0.25  # the child is gone; its CPU is still there
    finally:
        process.stdin.close()  # its last readline ends it
        process.wait(timeout=30)


BUSY_CHILD = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
print(child.pid, flush=True)
sys.stdin.readline()
child.kill()
child.wait()
"""


def test_cpu_seconds_leaves_out_a_child_it_is_told_to() -> None:
    """The embedded Redis is creditd's child: the server's CPU must not hold Redis' as well."""
    process = subprocess.Popen(
        [sys.executable, "-c", BUSY_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        child = int(process.stdout.readline())
        whole, without = cpu_seconds([process.pid]), cpu_seconds([process.pid], excluding=[child])
        time.sleep(0.5)  # the child spins a core meanwhile; the parent waits on its stdin
        assert cpu_seconds([process.pid]) - whole >= 0.25
        assert cpu_seconds([process.pid], excluding=[child]) - without < 0.1
    finally:
        process.stdin.close()
        process.wait(timeout=30)
