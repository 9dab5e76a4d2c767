"""Auto-pipelining: function calls issued in the same event-loop turn go to Redis in one pipeline.

A gateway's concurrent unary requests and a whole ChargeBatch thus share round trips instead of each
taking one. Calls are sent as non-transactional pipelines (each FCALL is atomic on its own); a batch
is cut at max_pipeline_commands and at most max_in_flight_pipelines are outstanding at once.
Every function is idempotent, so redis-py's retry of a pipeline after a time-out is safe.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from redis.exceptions import RedisError

from creditd import metrics
from creditd.errors import CreditdError, Internal, Unavailable
from creditd.redis_connection import AnyRedis

Command = tuple[str, Sequence[str], Sequence[str | int]]


# Replies that mean "Redis cannot serve this now", as opposed to a bug in a function.
TRANSIENT_REPLY_PREFIXES = ("LOADING", "BUSY", "MASTERDOWN", "READONLY", "TRYAGAIN", "CLUSTERDOWN", "OOM", "NOREPLICAS")


def classify_reply_error(error: Exception) -> CreditdError:
    text = str(error)
    if text.startswith(TRANSIENT_REPLY_PREFIXES) or "Function not found" in text:
        return Unavailable(f"redis: {text}")
    return Internal(f"redis function failed: {text}")


class AutoPipeline:
    def __init__(self, client: AnyRedis, max_commands: int, max_in_flight: int) -> None:
        self._client = client
        self._max_commands = max_commands
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._pending: list[tuple[Command, asyncio.Future[Any]]] = []
        self._flush_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def call(self, function: str, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append(((function, keys, args), future))
        if len(self._pending) >= self._max_commands:
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        return await future

    async def call_many(self, commands: Sequence[Command]) -> list[Any]:
        """Issues every command in this turn (one pipeline when they fit); results in order, an
        exception object in place of a failed call."""
        calls = [self.call(function, keys, args) for function, keys, args in commands]
        return await asyncio.gather(*calls, return_exceptions=True)

    def _flush(self) -> None:
        self._flush_scheduled = False
        while self._pending:
            batch, self._pending = self._pending[: self._max_commands], self._pending[self._max_commands :]
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[Command, asyncio.Future[Any]]]) -> None:
        async with self._in_flight:
            pipe = self._client.pipeline(transaction=False)
            for (function, keys, args), _ in batch:
                pipe.execute_command("FCALL", function, len(keys), *keys, *args)
            metrics.REDIS_PIPELINE_CALLS.observe(len(batch))
            started = time.perf_counter()
            try:
                results = await pipe.execute(raise_on_error=False)
            except (TimeoutError, RedisError, OSError) as error:
                metrics.REDIS_ERRORS.labels("unavailable").inc(len(batch))
                failure = Unavailable(f"redis: {type(error).__name__}: {error}")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(failure)
                return
            metrics.REDIS_PIPELINE_DURATION.observe(time.perf_counter() - started)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                error = classify_reply_error(result)
                metrics.REDIS_ERRORS.labels("unavailable" if isinstance(error, Unavailable) else "internal").inc()
                future.set_exception(error)
            else:
                future.set_result(result)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
