"""What each pipeline of function calls waits for before its calls are answered (store/pipeline.py):
WAIT for replicas, or WAITAOF for the local AOF's fsync, on the connection that carried the writes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from redis.asyncio.cluster import RedisCluster

from creditd.store.calls import Argument, Command
from creditd.store.connection import AnyRedis


class DurabilityWait(msgspec.Struct, frozen=True):
    """What each pipeline waits for before its calls are answered: WAIT for `replicas` replicas, or
    with `local_fsync` WAITAOF for the local AOF's fsync (and `replicas` replicas' AOFs); neither:
    nothing."""

    replicas: int = 0
    timeout_ms: int = 0
    local_fsync: bool = False

    @property
    def enabled(self) -> bool:
        return self.local_fsync or self.replicas > 0

    def command(self) -> tuple[Argument, ...]:
        if self.local_fsync:
            return ("WAITAOF", 1, self.replicas, self.timeout_ms)
        return ("WAIT", self.replicas, self.timeout_ms)

    def nodes(self, client: AnyRedis, batch: Sequence[Command]) -> list[Any]:
        """Where a WAIT goes: each node the batch writes to, or the one server (None)."""
        if not isinstance(client, RedisCluster):
            return [None]
        by_name = {}
        for _, keys, _ in batch:
            node = client.get_node_from_key(keys[0]) if keys else None
            if node is not None:
                by_name[node.name] = node
        return list(by_name.values())

    def _confirmed(self, reply: Any) -> bool:
        if self.local_fsync:  # WAITAOF: [local AOFs fsynced, replicas that fsynced]
            return isinstance(reply, list) and len(reply) == 2 and reply[0] >= 1 and reply[1] >= self.replicas
        return isinstance(reply, int) and reply >= self.replicas

    def shortfall(self, confirmed: Sequence[Any]) -> str | None:
        if all(self._confirmed(reply) for reply in confirmed):
            return None
        counts = ", ".join(
            repr(reply) if isinstance(reply, int | list) else type(reply).__name__ for reply in confirmed
        )
        if self.local_fsync:
            return (
                f"redis: written but WAITAOF confirmed {counts} (local AOF fsynced, replicas) of 1 and "
                f"{self.replicas} within {self.timeout_ms} ms; retry (calls are idempotent)"
            )
        return (
            f"redis: written on the primary but confirmed by {counts} of {self.replicas} replica(s) "
            f"within {self.timeout_ms} ms; retry (calls are idempotent)"
        )
