"""`creditd usage export` and `creditd rerate`.

Export: the usage records, in order, into a CSV or JSON Lines file, resumable.

The file itself is the resume point: a re-run onto the same file first drops a partly written last
line (the writer was killed mid-line), then continues after the last record the file holds, so a
kill at any instant leaves nothing missing and nothing twice. Records are written in batches, each
flushed and synced before the command prints the last id written (and stores it in Redis for the
metric of the oldest unexported record)."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import click
import msgspec
import redis

from creditd.cli import edge, render
from creditd.cli.common import open_redis, redis_options
from creditd.clock import Clock
from creditd.core.feed import Key, parse_position
from creditd.core.rerate import post_adjustments, window_rows
from creditd.core.usage import FIELDS, Usage
from creditd.core.usage_log import EXPORTED_POSITION_KEY, count_usage, iter_usage
from creditd.errors import CreditdError
from creditd.store.account_record import read_account
from creditd.store.calls import Calls
from creditd.store.connection import AnySyncRedis
from creditd.store.keys import Keys
from creditd.store.library import library_version, render_library

EXPORT_BATCH = 1000
TAIL_BYTES = 65_536


@click.group(cls=edge.Group)
def usage() -> None:
    """Usage records: what was used and what it cost."""


def _last_line(handle: BinaryIO) -> bytes:
    """Drops a partial last line; returns the last complete one (b'' for none)."""
    size = handle.seek(0, os.SEEK_END)
    start = max(0, size - TAIL_BYTES)
    handle.seek(start)
    tail = handle.read()
    complete = tail[: tail.rfind(b"\n") + 1]
    if len(complete) < len(tail):
        handle.truncate(start + len(complete))
    lines = complete.splitlines()
    return lines[-1] if lines else b""


def _id_of_line(line: bytes, output_format: str) -> str | None:
    if not line:
        return None
    if output_format == "jsonl":
        return str(json.loads(line)["id"])
    first = next(csv.reader([line.decode()]))[0]
    return None if first == "id" else first


def _lines(records: Iterator[Usage], output_format: str) -> Iterator[tuple[Usage, bytes]]:
    encoder = msgspec.json.Encoder()
    for record in records:
        if output_format == "jsonl":
            yield record, encoder.encode(record) + b"\n"
        else:
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\n").writerow(getattr(record, name) for name in FIELDS)
            yield record, buffer.getvalue().encode()


class BatchWriter:
    """Appends lines in batches: each written, flushed and synced, then its last id printed and stored."""

    def __init__(self, handle: BinaryIO, client: AnySyncRedis, progress: Callable[[int], None]) -> None:
        self.handle, self.client, self.progress = handle, client, progress

    def write(self, records: Iterator[tuple[Usage, bytes]], batch_size: int) -> str | None:
        last_id, batch = None, []
        for record, line in records:
            batch.append(line)
            last_id = record.id
            if len(batch) >= batch_size:
                self._flush(batch, last_id)
                batch = []
        if batch and last_id is not None:
            self._flush(batch, last_id)
        return last_id

    def _flush(self, batch: list[bytes], last_id: str) -> None:
        self.handle.write(b"".join(batch))
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.client.set(EXPORTED_POSITION_KEY, last_id)
        self.progress(len(batch))
        click.echo(f"exported through {last_id}", err=True)


@usage.command("export")
@redis_options
@click.option("--from", "from_id", default="0-0-0", show_default=True, help="continue after this record id")
@click.option("--to", "to_id", default="", help="stop after this record id [default: the newest settled one]")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["csv", "jsonl"]),
    default="csv",
    show_default=True,
    help="CSV with a header, or one JSON object a line",
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="file to write, or to continue")
@click.option(
    "--batch-size",
    default=EXPORT_BATCH,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="records a synced write",
)
def export(
    redis_url: str | None,
    data_dir: Path | None,
    config: Path | None,
    from_id: str,
    to_id: str,
    output_format: str,
    out: Path,
    batch_size: int,
) -> None:
    """Write the usage records after --from (or after the last one the file already holds) to --out;
    print the last id written."""
    settings, client = open_redis(redis_url, data_dir, config)
    partitions = settings.redis.partitions
    try:
        after: Key = parse_position(from_id, partitions, "--from")
        until = parse_position(to_id, partitions, "--to") if to_id else None
    except CreditdError as error:
        raise click.BadParameter(error.message) from None
    with out.open("a+b") as handle:
        held = _id_of_line(_last_line(handle), output_format)
        if held is not None:
            after = max(after, parse_position(held, partitions, str(out)))
        if handle.tell() == 0 and output_format == "csv":
            handle.write((",".join(FIELDS) + "\n").encode())
        try:
            records = iter_usage(client, partitions, after, settings.events.settle_ms, until)
            total = count_usage(client, partitions)
            with click.progressbar(length=total, label="exporting usage", file=sys.stderr) as progress:
                last_id = BatchWriter(handle, client, progress.update).write(_lines(records, output_format), batch_size)
        except redis.RedisError as error:
            raise click.ClickException(edge.redis_error_message(error)) from None
        finally:
            client.close()
    click.echo(f"last id: {last_id or held or from_id}")


def instant_ms(text: str, option: str) -> int:
    """An ISO 8601 date or time as Unix ms; without an offset, UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{option}: an ISO 8601 date or time, e.g. 2027-03-01T00:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


@click.command(cls=edge.Command)
@redis_options
@click.option("--from", "from_text", required=True, help="window start, ISO 8601 (UTC unless an offset is given)")
@click.option("--to", "to_text", required=True, help="window end (exclusive)")
@click.option("--account", "accounts", multiple=True, help="only these accounts (repeatable) [default: all]")
@click.option("--dry-run", is_flag=True, help="print the differences, post nothing")
def rerate(
    redis_url: str | None,
    data_dir: Path | None,
    config: Path | None,
    from_text: str,
    to_text: str,
    accounts: tuple[str, ...],
    dry_run: bool,
) -> None:
    """Price every usage record of a window again with today's tariffs; post one adjustment per
    account for the difference (idempotent: a second run with the same config posts nothing)."""
    window = (instant_ms(from_text, "--from"), instant_ms(to_text, "--to"))
    if window[0] >= window[1]:
        raise click.BadParameter("--to: must be after --from")
    settings, client = open_redis(redis_url, data_dir, config)
    keys = Keys(settings.redis.partitions)
    plans: dict[str, str] = {}

    def plan_of(account_id: str) -> str:
        if account_id not in plans:
            plans[account_id] = read_account(client, keys.account(account_id)).get("plan", "")
        return plans[account_id]

    config_hash = library_version(render_library(settings))
    try:
        found = window_rows(client, settings, window, frozenset(accounts), plan_of)
        rows = sorted(found.values(), key=lambda row: row.account_id)
        if not dry_run:
            calls = Calls(settings.redis.partitions)
            post_adjustments(client, calls, rows, window, config_hash, Clock().now_ms(), "cli:rerate")
    except redis.RedisError as error:
        raise click.ClickException(edge.redis_error_message(error)) from None
    finally:
        client.close()
    click.echo(render.rerate_table(rows, dry_run))
    failed = [row for row in rows if row.error]
    if failed:
        raise click.ClickException(f"{len(failed)} adjustment(s) refused: {failed[0].account_id}: {failed[0].error}")
