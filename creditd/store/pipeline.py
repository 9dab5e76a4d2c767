"""Auto-pipelining: function calls issued in the same event-loop turn go to Redis in one pipeline.

A gateway's concurrent unary requests and a whole ChargeBatch thus share round trips instead of each
taking one. Calls are sent as non-transactional pipelines (each FCALL is atomic on its own); a batch
is cut at max_pipeline_commands and at most max_in_flight_pipelines are outstanding at once. While
one is out, fewer than parallel_pipeline_min_calls calls wait for it to come back and then go
together: under load the pipelines grow instead of multiplying, which saves Redis and this process
a read, a write and a wake-up per call; idle, a call goes at once, and a ChargeBatch's hundreds of calls go at
once beside the one out. Every function is idempotent, so resending a pipeline after a connection
failure (redis-py's retry, or the wire's, store/wire.py) is safe.

Every call is answered within deadline_s (redis.call_timeout_s) of being issued, whatever Redis does:
a pipeline's deadline counts from its oldest call's issue, a pipeline still waiting then is
cancelled, its calls fail UNAVAILABLE, and the circuit (store/circuit.py) opens (calls still waiting
for a pipeline then fail at once), so that later calls are refused at
once instead of queuing behind a Redis that does not answer. Cancelling closes the connection in the
middle of its exchange (redis-py disconnects a connection whose read or write was interrupted; the
wire is reset), so a late reply is never read as the answer to a later command.

With wait_replicas > 0 each pipeline ends with WAIT on every node it wrote to (on the same connection,
so it covers exactly these writes), and its calls are answered only when enough replicas confirmed;
otherwise they fail UNAVAILABLE and the caller's retry replays them. With durability "fsync" the same
place holds WAITAOF 1 <wait_replicas>: one fsync of the AOF shared by every call of the pipeline. On a
cluster, a call redirected (MOVED, ASK) would run on another connection that WAIT does not cover: it
is answered UNAVAILABLE too, after the slot map is refreshed, so that the retry goes straight to the
slot's owner.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MovedError, ReadOnlyError, RedisError

from creditd import metrics
from creditd.errors import CreditdError, Internal, Unavailable
from creditd.store.calls import Argument, Command, fcall_words
from creditd.store.circuit import Circuit
from creditd.store.connection import RETRY_ATTEMPTS, AnyRedis
from creditd.store.deadlines import Deadlines, OutPipeline
from creditd.store.durability_wait import DurabilityWait
from creditd.store.replies import classify_reply_error
from creditd.store.resp import CallPacker, RangeReadPacker, range_read
from creditd.store.wire import WireClient, pack_words

log = logging.getLogger(__name__)
# The backoff between attempts on the lean connection (redis-py's ExponentialBackoff, same figures).
WIRE_RETRY_BASE_S, WIRE_RETRY_CAP_S = 0.02, 0.5


def _any_read_only(results: Sequence[Any]) -> bool:
    """Whether a reply says the server is a replica now (a loop, not any() over a generator: this
    runs for every pipeline)."""
    for result in results:  # noqa: SIM110 - see the docstring
        if isinstance(result, ReadOnlyError):
            return True
    return False


class AutoPipeline:
    def __init__(
        self,
        client: AnyRedis,
        max_commands: int,
        max_in_flight: int,
        deadline_s: float,
        circuit: Circuit,
        wait: DurabilityWait | None = None,
        wire: WireClient | None = None,
        parallel_min_calls: int = 1,
    ) -> None:
        self._client = client
        # Asked once: redis-py's cluster class has a Protocol among its bases, so isinstance runs
        # typing's slow check.
        self._cluster = client if isinstance(client, RedisCluster) else None
        self._wire = wire
        self._packer = CallPacker()
        self._range_packer = RangeReadPacker()
        self._deadline_s = deadline_s
        self._circuit = circuit
        self._wait = wait or DurabilityWait()
        self._wait_enabled = self._wait.enabled  # read for every pipeline: once, not by its property
        self._max_commands = max_commands
        self._max_in_flight = max_in_flight
        self._parallel_min_calls = parallel_min_calls
        self._in_flight = 0
        # Calls not sent yet, and beside them the loop time each was issued at (its deadline counts
        # from then): two lists, so that a cut of the first is a batch as it is.
        self._pending: list[tuple[Command, asyncio.Future[Any]]] = []
        self._issued_at: list[float] = []
        self._flush_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        # The batches sent at once, still awaited (close waits for them), and their deadlines' timer.
        self._deadlines: Deadlines | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def call(self, function: str, keys: Sequence[str], args: Sequence[Argument]) -> asyncio.Future[Any]:
        """The call's reply, to await (a future, not a coroutine: one layer less to suspend and
        resume on every request). Raises at once while the circuit is open."""
        self._circuit.check()
        # _queue's work for one command, without its lists: this runs for every unary request
        loop = self._loop or self._bind_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append(((function, keys, args), future))
        self._issued_at.append(loop.time())
        self._schedule_flush()
        return future

    async def call_many(self, commands: Sequence[Command]) -> list[Any]:
        """Issues every command in this turn (one pipeline when they fit); results in order, an
        exception object in place of a failed call. One future per call and no task: a coroutine and a
        task for each would cost a ChargeBatch of hundreds of calls more than its calls."""
        if not commands:  # nothing to flush: no turn of the loop spent on it (the sweeper's idle steps)
            return []
        if self._circuit.is_open:
            return [self._circuit.refusal() for _ in commands]
        return await asyncio.gather(*self._queue(commands), return_exceptions=True)

    def _queue(self, commands: Sequence[Command]) -> list[asyncio.Future[Any]]:
        """Adds the commands to the pending ones (issued now) and has them flushed; their futures."""
        loop = self._loop or self._bind_loop()
        futures = []
        for command in commands:
            future: asyncio.Future[Any] = loop.create_future()
            self._pending.append((command, future))
            futures.append(future)
        self._issued_at += [loop.time()] * len(commands)
        self._schedule_flush()
        return futures

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            (self._loop or self._bind_loop()).call_soon(self._flush)

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        # Looked up once: CPython 3.11's get_running_loop() makes a getpid() system call each time,
        # 5 % of the serving process' CPU under load (py-spy).
        self._loop = asyncio.get_running_loop()
        self._deadlines = Deadlines(self._loop, self._expired)
        return self._loop

    def _flush(self) -> None:
        """Sends what is pending: at once when no pipeline is out, beside those out when there is
        enough of it for a pipeline of its own, else when the one out comes back (_sent)."""
        self._flush_scheduled = False
        if not self._pending:
            return
        if self._circuit.is_open:  # opened while these waited for a pipeline
            pending, self._pending, self._issued_at = self._pending, [], []
            self._fail(pending, self._circuit.refusal())
            return
        loop = self._loop or self._bind_loop()
        while self._pending and self._in_flight < self._max_in_flight:
            if self._in_flight and len(self._pending) < self._parallel_min_calls:
                return
            deadline_at = self._issued_at[0] + self._deadline_s
            if len(self._pending) <= self._max_commands:  # nearly always: no copies
                batch, self._pending, self._issued_at = self._pending, [], []
            else:
                cut = self._max_commands
                batch, self._pending = self._pending[:cut], self._pending[cut:]
                del self._issued_at[:cut]
            self._in_flight += 1
            if not self._send_at_once(loop, batch, deadline_at):
                self._start_task(loop, batch, deadline_at)

    def _start_task(
        self, loop: asyncio.AbstractEventLoop, batch: list[tuple[Command, asyncio.Future[Any]]], deadline_at: float
    ) -> None:
        task = loop.create_task(self._send(batch, deadline_at))
        self._tasks.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None] | None) -> None:
        if task is not None:
            self._tasks.discard(task)
        self._in_flight -= 1
        if self._pending:
            self._schedule_flush()

    # ---------------------------------------------------------------- the common case, without a task
    # On the lean connection already open, with nothing to wait for after the calls (no WAIT,
    # WAITAOF), a pipeline is written at once and answered from the reply's callback; its deadline is
    # watched by one timer for all of them (store/deadlines.py): a task and a time-out scope for each
    # pipeline are among the costliest steps of a unary Charge in this process
    # (loadtest.server_instructions counts them). Anything else (no connection yet, a lost one, a
    # demoted primary) goes the task's way, which connects and sends again.

    def _send_at_once(
        self, loop: asyncio.AbstractEventLoop, batch: list[tuple[Command, asyncio.Future[Any]]], deadline_at: float
    ) -> bool:
        """Sends the batch without a task; False when it cannot, having sent nothing."""
        if self._wire is None or self._wait_enabled:
            return False
        if len(batch) == 1:  # most unary pipelines: no list of commands, no join
            packed = self._packer.pack(batch[0][0])
        else:
            packed = self._packer.pack_all([command for command, _ in batch])
        out = OutPipeline(batch, deadline_at, time.perf_counter())
        # answered from the wire's callback, in the turn its replies came (store/wire.py Batch)
        replies = self._wire.send_packed_now(packed, len(batch), partial(self._answered_at_once, loop, out))
        if replies is None:
            return False
        out.replies = replies
        metrics.REDIS_PIPELINE_CALLS.observe(len(batch))
        assert self._deadlines is not None, "bound with the loop"
        self._deadlines.add(out)
        return True

    def _expired(self, out: OutPipeline) -> None:
        # the calls fail, then the reset fails the replies' future, whose callback finds them answered
        self._timed_out(out.batch)

    def _answered_at_once(self, loop: asyncio.AbstractEventLoop, out: OutPipeline) -> None:
        assert self._deadlines is not None, "bound with the loop"
        self._deadlines.remove(out)
        again = False
        try:
            again = self._take_replies(loop, out)
        finally:
            if again:
                self._start_task(loop, out.batch, out.deadline_at)  # keeps its place in flight; _sent ends it
            else:
                self._fail_unanswered(out.batch)  # as _send's
                self._sent(None)

    def _take_replies(self, loop: asyncio.AbstractEventLoop, out: OutPipeline) -> bool:
        """Answers a batch sent at once from its replies; True when it must be sent again, the task's
        way (a lost connection, a demoted primary), with time left before its deadline."""
        replies, batch = out.replies, out.batch
        results = None if replies.cancelled() or replies.exception() is not None else replies.result()
        if results is not None and not _any_read_only(results):
            metrics.REDIS_PIPELINE_DURATION.observe(time.perf_counter() - out.started)
            self._settle(batch, results)
            return False
        if not all(future.done() for _, future in batch) and loop.time() < out.deadline_at:
            return True
        self._fail(batch, Unavailable("redis: the connection was lost; retry (calls are idempotent)"))
        return False

    async def _send(self, batch: list[tuple[Command, asyncio.Future[Any]]], deadline_at: float) -> None:
        try:
            async with asyncio.timeout_at(deadline_at):
                await self._send_and_answer(batch)
        except TimeoutError:
            self._timed_out(batch)
        finally:
            self._fail_unanswered(batch)

    def _timed_out(self, batch: list[tuple[Command, asyncio.Future[Any]]]) -> None:
        metrics.REDIS_TIMEOUTS.labels("pipeline").inc()
        # the calls fail first: the reset below fails what waits on the connection, and a batch sent
        # at once must find its calls answered then
        self._fail(
            batch,
            Unavailable(
                f"redis: no answer within redis.call_timeout_s ({self._deadline_s:g} s); retry (calls are idempotent)"
            ),
        )
        if self._wire is not None:
            self._wire.reset(f"no answer within {self._deadline_s:g} s")
        self._circuit.trip(f"redis gave a pipeline no answer within {self._deadline_s:g} s")

    async def _send_and_answer(self, batch: list[tuple[Command, asyncio.Future[Any]]]) -> None:
        commands = [command for command, _ in batch]
        metrics.REDIS_PIPELINE_CALLS.observe(len(batch))
        started = time.perf_counter()
        try:
            results = await self._execute(commands)
        except Exception as error:  # noqa: BLE001
            # Not a reply but a failure to exchange one: besides time-outs and connection errors,
            # redis-py's cluster reconnection can trip over a transport a dead node closed
            # (RuntimeError, AttributeError). Whether the calls ran is unknown; they are
            # idempotent, so UNAVAILABLE (retry) is the right answer either way.
            if not isinstance(error, (TimeoutError, RedisError, OSError)):
                log.warning("redis pipeline failed in the client: %s: %s", type(error).__name__, error)
            self._fail(batch, Unavailable(f"redis: {type(error).__name__}: {error}"))
            return
        metrics.REDIS_PIPELINE_DURATION.observe(time.perf_counter() - started)
        results, confirmed = results[: len(batch)], results[len(batch) :]
        if self._cluster is not None and any(isinstance(result, MovedError) for result in results):
            # Before anything else: a shortfall below must not keep a stale slot map alive.
            await self._cluster.nodes_manager.initialize()
        if self._wait_enabled and (shortfall := self._wait.shortfall(confirmed)):
            self._fail(batch, Unavailable(shortfall))
            return
        self._settle(batch, results)

    @staticmethod
    def _settle(batch: list[tuple[Command, asyncio.Future[Any]]], results: Sequence[Any]) -> None:
        """Answers each call of the batch not answered yet with its reply, or its error's meaning."""
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                failure = classify_reply_error(result)
                metrics.REDIS_ERRORS.labels("unavailable" if isinstance(failure, Unavailable) else "internal").inc()
                future.set_exception(failure)
            else:
                future.set_result(result)

    async def _execute(self, commands: Sequence[Command]) -> list[Any]:
        """The calls' replies in order, then (waiting for replicas) the WAIT replies."""
        if self._wire is not None:
            return await self._execute_on_wire(commands)
        pipe = self._client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*fcall_words(command))
        if not self._wait_enabled:
            return await pipe.execute(raise_on_error=False)
        for node in self._wait.nodes(self._client, commands):
            target = {} if node is None else {"target_nodes": node}
            pipe.execute_command(*self._wait.command(), **target)
        if isinstance(pipe, ClusterPipeline):
            return await pipe.execute(raise_on_error=False, allow_redirections=False)
        return await pipe.execute(raise_on_error=False)

    async def _execute_on_wire(self, commands: Sequence[Command]) -> list[Any]:
        """_execute on the lean connection. A connection that fails, or a primary that answers
        READONLY (it was demoted), is replaced and the whole batch sent again, as redis-py's retry
        would: the calls may have run, and are idempotent."""
        assert self._wire is not None
        packed = self._packer.pack_all(commands)
        count = len(commands)
        if self._wait_enabled:
            packed += pack_words(self._wait.command())
            count += 1
        for attempt in range(1, RETRY_ATTEMPTS + 1):
            try:
                replies = await self._wire.execute_packed(packed, count)
            except RedisConnectionError:
                if attempt == RETRY_ATTEMPTS:
                    raise
            else:
                if attempt == RETRY_ATTEMPTS or not any(isinstance(reply, ReadOnlyError) for reply in replies):
                    return replies
            await asyncio.sleep(min(WIRE_RETRY_CAP_S, WIRE_RETRY_BASE_S * 2**attempt))
        raise AssertionError("unreachable")

    async def read_ranges(self, reads: Sequence[tuple[str, int]], count: int) -> list[Any]:
        """Range reads, ZRANGEBYSCORE <key> -inf <until> LIMIT 0 <count> for each (key, until) (the
        sweeper's index reads), in one round trip answered within deadline_s; an error reply
        raises. They go on the lean connection when there is one, packed by RangeReadPacker:
        redis-py's pipeline costs many times its Python per command, and the sweeper sends dozens a
        step, several steps a second, in every serving process."""
        async with asyncio.timeout(self._deadline_s):
            if self._wire is not None:
                replies = await self._wire.execute_packed(self._range_packer.pack(reads, count), len(reads))
            else:
                pipe = self._client.pipeline(transaction=False)
                for key, until in reads:
                    pipe.execute_command(*range_read(key, until, count))
                replies = await pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return list(replies)

    @staticmethod
    def _fail(batch: list[tuple[Command, asyncio.Future[Any]]], failure: CreditdError) -> None:
        """Fails the calls of the batch not answered yet."""
        kind = "unavailable" if isinstance(failure, Unavailable) else "internal"
        for _, future in batch:
            if not future.done():
                metrics.REDIS_ERRORS.labels(kind).inc()
                future.set_exception(failure)

    @classmethod
    def _fail_unanswered(cls, batch: list[tuple[Command, asyncio.Future[Any]]]) -> None:
        """No caller may wait forever: a call of a pipeline that ended still unanswered is failed,
        as a bug of ours (the error is made only then: this runs at the end of every pipeline)."""
        for _, future in batch:  # a loop, not all() over a generator: this runs for every pipeline
            if not future.done():
                cls._fail(batch, Internal("redis pipeline ended without an answer for this call"))
                return

    async def close(self) -> None:
        # a batch sent at once may hand itself to a task when its connection fails: wait for both
        while awaited := [*self._tasks, *(self._deadlines.replies() if self._deadlines else ())]:
            await asyncio.wait(awaited)
        if self._deadlines is not None:
            self._deadlines.stop()
        if self._wire is not None:
            await self._wire.close()
