"""python -m loadtest.redis_aof: the bytes the append-only file grows by per `charge` call, per request
type and on the standard mix, beside the reserve-shaped baseline and the charge-shaped floor (the phases
of loadtest.redis_time, piped into an embedded server with AOF on). What a deployment's disk writes
and how soon an AOF rewrite comes at a given traffic follow from it; the count is the server's own
`aof_current_size` around each phase, so it is exact and the same on any machine."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click
import msgspec
import redis

from creditd.store.embedded import EmbeddedRedis
from loadtest.redis_instructions import weighted_mix
from loadtest.redis_time import piped, prepare, write_rows


class TypeBytes(msgspec.Struct):
    phase: str
    calls: int
    aof_bytes_per_call: float


def aof_size(client: redis.Redis) -> int:
    return int(client.info("persistence")["aof_current_size"])


def measure(session_count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="creditd-aof-") as work, EmbeddedRedis(Path(work)) as server:
        client = redis.Redis.from_url(server.url)
        _, phases = prepare(client, session_count)
        figures = {}
        for name, words in phases:
            before = aof_size(client)
            piped(client, words)
            figures[name] = (aof_size(client) - before) / len(words)
        client.close()
    figures["standard mix"] = weighted_mix(figures)
    return figures


@click.command()
@click.option("--sessions", "session_count", default=400, show_default=True, help="calls per phase")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=Path("loadtest/results/redis_aof.json"))
def main(session_count: int, json_path: Path) -> None:
    figures = measure(session_count)
    click.echo(f"{'phase':28} {'AOF bytes per call':>20}")
    for name, value in figures.items():
        click.echo(f"{name:28} {value:>20,.0f}")
    write_rows([TypeBytes(name, session_count, round(value)) for name, value in figures.items()], json_path)


if __name__ == "__main__":
    main()
