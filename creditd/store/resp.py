"""Function calls in RESP for the lean connection (store/wire.py), the words a partition's calls share
packed once.

hiredis packs a command word by word (a sprintf for each word's length): a charge's FCALL of 16
words cost the serving process some 21 000 instructions a call, a tenth of what it spends on a Charge
beside the floor of one Redis round trip (loadtest.server_instructions). Of those words, the verb, the
function's name, the key count and the partition's own keys (its deadlines, events, stats...) are the
same for every call of that function in that partition. A layout that lists the partition's keys
first (store/calls.py SESSION_CALL) has them packed once per function and partition, with the array's
header; a call then packs only the words after them. Any other layout is packed whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from creditd.store.calls import KEY_LAYOUTS, Command, fcall_words
from creditd.store.keys import PARTITION_KEY_NAMES
from creditd.store.wire import pack_tuple


def leading_partition_keys(layouts: Mapping[str, tuple[str, ...]]) -> dict[str, int]:
    """How many of each function's keys, from the first, are its partition's own (those with any)."""
    counts = {}
    for function, names in layouts.items():
        count = 0
        while count < len(names) and names[count] in PARTITION_KEY_NAMES:
            count += 1
        if count:
            counts[function] = count
    return counts


# What a packer keeps: one head per function with leading partition keys (two), partition (at most
# 16 384, redis.partitions) and word count (one each); forgotten, to be packed again, past this.
MAX_KEPT_HEADS = 65_536


class CallPacker:
    """Packs FCALL commands, keeping each function's and partition's head (MAX_KEPT_HEADS)."""

    def __init__(self, layouts: Mapping[str, tuple[str, ...]] = KEY_LAYOUTS) -> None:
        self._shared = leading_partition_keys(layouts)
        # (function, the call's first key, its word count) -> the array header and the shared words
        self._heads: dict[tuple[str, str, int], tuple[bytes, int]] = {}

    def pack(self, command: Command) -> bytes:
        function, keys, args = command
        shared = self._shared.get(function, 0)
        if not shared or len(keys) < shared:
            return pack_tuple(fcall_words(command))
        # a tuple's slice and sum when both are tuples, as the builders make them: unpacking costs more
        rest = keys[shared:] + args if type(keys) is tuple and type(args) is tuple else (*keys[shared:], *args)
        head_key = (function, keys[0], 3 + len(keys) + len(args))
        kept = self._heads.get(head_key)
        if kept is None:
            if len(self._heads) >= MAX_KEPT_HEADS:
                self._heads.clear()
            kept = self._heads[head_key] = self._head(command, shared)
        head, rest_header_bytes = kept
        packed = pack_tuple(rest)
        # the rest's own array header ('*<n>\r\n') gives way to the head's
        return head + packed[rest_header_bytes:]

    @staticmethod
    def _head(command: Command, shared: int) -> tuple[bytes, int]:
        """The whole command's array header, then its verb, function, key count and shared keys; and
        the length of the array header of the words after them, packed on their own."""
        function, keys, args = command
        whole = pack_tuple(fcall_words(command))
        rest = pack_tuple((*keys[shared:], *args))
        rest_header_bytes = rest.index(b"\n") + 1
        tail = rest[rest_header_bytes:]
        assert whole.endswith(tail), "the shared words are the command's first"
        return whole[: len(whole) - len(tail)], rest_header_bytes

    def pack_all(self, commands: Sequence[Command]) -> bytes:
        """The commands in RESP, one write's worth."""
        return b"".join([self.pack(command) for command in commands])


# A read's words: ZRANGEBYSCORE <key> -inf <until> LIMIT 0 <count> (RangeReadPacker).
RANGE_READ_WORDS = 7


class RangeReadPacker:
    """Packs `ZRANGEBYSCORE <key> -inf <until> LIMIT 0 <count>` reads, keeping each key's leading
    words (MAX_KEPT_HEADS): the sweeper reads three indexes of each partition every pass (768 reads
    a second in every serving process, shipped settings), and packing each read whole with hiredis
    was a third of a pass' CPU. A pack's reads share their count and few `until`s, packed once each."""

    def __init__(self) -> None:
        self._heads: dict[str, bytes] = {}

    def pack(self, reads: Sequence[tuple[str, int]], count: int) -> bytes:
        """The reads, (key, until) each, in RESP, one write's worth."""
        tails: dict[int, bytes] = {}
        parts: list[bytes] = []
        for key, until in reads:
            head = self._heads.get(key)
            if head is None:
                if len(self._heads) >= MAX_KEPT_HEADS:
                    self._heads.clear()
                head = self._heads[key] = _range_head(key)
            tail = tails.get(until)
            if tail is None:
                tail = tails[until] = _without_array_header(pack_tuple((until, "LIMIT", 0, count)))
            parts += (head, tail)
        return b"".join(parts)


def _range_head(key: str) -> bytes:
    """A range read's array header and its first three words."""
    return b"*%d\r\n" % RANGE_READ_WORDS + _without_array_header(pack_tuple(("ZRANGEBYSCORE", key, "-inf")))


def _without_array_header(packed: bytes) -> bytes:
    return packed[packed.index(b"\n") + 1 :]


def range_read(key: str, until: int, count: int) -> tuple[str, str, str, int, str, int, int]:
    """The same read as a command's words (for redis-py's pipeline: a cluster's reads)."""
    return ("ZRANGEBYSCORE", key, "-inf", until, "LIMIT", 0, count)
