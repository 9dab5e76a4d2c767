"""Event positions without a server: parsing refuses what is not an id of this deployment, and the
per-stream cursors derived from a position deliver exactly the events ordered after it."""

from __future__ import annotations

import itertools

import pytest

from creditd.core.feed import format_position, parse_position, stream_cursor
from creditd.errors import InvalidArgument


def after_cursor(cursor: str, ms: int, seq: int) -> bool:
    cursor_ms, cursor_seq = (int(part) for part in cursor.split("-"))
    return (ms, seq) > (cursor_ms, cursor_seq)


def test_cursors_split_every_possible_event_exactly_at_the_position() -> None:
    events = [  # every stream id but 0-0, which Redis never gives an entry
        (ms, seq, partition) for ms, seq, partition in itertools.product(range(3), range(3), range(4)) if ms or seq
    ]
    for position in events + [(0, 0, 0), (2, 2, 3)]:
        for ms, seq, partition in events:
            delivered = after_cursor(stream_cursor(position, partition), ms, seq)
            assert delivered == ((ms, seq, partition) > position), (position, (ms, seq, partition))


def test_positions_round_trip_and_bad_ones_are_refused() -> None:
    assert parse_position(format_position((1795393082114, 3, 17)), 256) == (1795393082114, 3, 17)
    for bad in ("", "a-b-c", "1-2", "1-2-3-4", "1-2-256", "1--2-3", "1-2-" + "9" * 21):
        with pytest.raises(InvalidArgument):
            parse_position(bad, 256)
