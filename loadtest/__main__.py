"""python -m loadtest: play gateway traffic against creditd and print throughput, latency
percentiles, errors and ratios to baselines measured in the same run; write them as JSON."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click
import uvloop

from loadtest.report import comparison, read_report, run_identity, table, write_json
from loadtest.runner import Options, run
from loadtest.traffic import Shape

SMOKE = Shape(gateways=2, sessions_per_gateway=4, accounts=40, duration_s=1.5, top_ups_per_s=10)


@click.command()
@click.option("--target", default="", help="HOST:PORT of a running creditd [default: start one]")
@click.option(
    "--redis",
    "redis_url",
    default="",
    help="the running creditd's Redis URL (floor, memory, audit); without --target, an empty one for the "
    "creditd it starts (default: that creditd's embedded one)",
)
@click.option("--mode", type=click.Choice(["unary", "batch", "both"]), default="both", show_default=True)
@click.option("--duration", default=10.0, show_default=True, help="seconds per phase")
@click.option("--gateways", default=4, show_default=True)
@click.option("--sessions", default=16, show_default=True, help="concurrent sessions per gateway (unary)")
@click.option("--batch-size", default=200, show_default=True, help="requests per ChargeBatch")
@click.option("--accounts", default=200, show_default=True)
@click.option("--workers", default=1, show_default=True, help="creditd processes when it starts one")
@click.option("--max-requests", default=2_000_000, show_default=True, help="per phase")
@click.option("--baselines/--no-baselines", default=True, show_default=True)
@click.option("--rounds", default=1, show_default=True, help="every phase this many times, interleaved; medians")
@click.option(
    "--json", "json_path", type=click.Path(path_type=Path), help="[default: loadtest/results/<commit>-<time>.json]"
)
@click.option(
    "--compare",
    "compare_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="a previous run's JSON: print every figure's ratio to it",
)
@click.option(
    "--durability",
    type=click.Choice(["written", "fsync"]),
    default="written",
    show_default=True,
    help="redis.durability of the creditd it starts",
)
@click.option("--smoke", is_flag=True, help="a few seconds on a small shape (CI)")
def main(  # noqa: PLR0913 - one parameter per option
    target: str,
    redis_url: str,
    mode: str,
    duration: float,
    gateways: int,
    sessions: int,
    batch_size: int,
    accounts: int,
    workers: int,
    max_requests: int,
    baselines: bool,
    rounds: int,
    json_path: Path | None,
    compare_path: Path | None,
    durability: str,
    smoke: bool,
) -> None:
    shape = (
        SMOKE
        if smoke
        else Shape(
            gateways=gateways,
            sessions_per_gateway=sessions,
            accounts=accounts,
            duration_s=duration,
            max_requests=max_requests,
        )
    )
    modes = ("unary", "batch") if mode == "both" else (mode,)
    options = Options(
        target=target,
        redis_url=redis_url,
        modes=modes,
        shape=shape,
        batch_size=20 if smoke else batch_size,
        workers=workers,
        baselines=baselines,
        rounds=max(1, rounds),
        durability=durability,
    )
    progress = click.progressbar(
        length=10**12, label="charges", file=sys.stderr, show_eta=False, show_percent=False, show_pos=True
    )
    with progress as bar, asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        report = runner.run(run(options, bar.update))
    report.settings.update(run_identity())
    click.echo(table(report))
    if compare_path is not None:
        click.echo("")
        click.echo(comparison(report, read_report(compare_path)))
    json_path = (
        json_path or Path("loadtest/results") / f"{report.settings['commit']}-{report.settings['written_at']}.json"
    )
    write_json(report, json_path)
    click.echo(f"written: {json_path}")
    sys.exit(1 if report.audit_violations else 0)


main()
