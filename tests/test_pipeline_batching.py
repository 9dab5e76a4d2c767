"""How the auto-pipeline groups calls, against a real embedded server with a small function library
of its own (`spin` keeps Redis busy for a while, `echo` answers its argument): calls issued while a
pipeline is out go together in the next one, in order and each with its own answer; enough of them
for a pipeline of their own go at once beside it; a call's deadline counts from its issue, and calls
still waiting for a pipeline when the circuit opens fail at once. A pipeline sent at once on the
open connection (no task) keeps the same promises: past its deadline its calls fail and the
connection is replaced, and when its connection is lost under it, it is sent again on a new one;
its deadline counts from its own calls' issue though the one timer watching the pipelines out was
armed for an earlier pipeline's.
Pipelines are counted with the creditd_redis_pipeline_calls histogram."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from creditd import metrics
from creditd.config.settings import RedisSettings
from creditd.errors import Unavailable
from creditd.store.circuit import Circuit
from creditd.store.connection import connect, wire_client
from creditd.store.embedded import EmbeddedRedis
from creditd.store.pipeline import AutoPipeline
from creditd.store.wire import WireClient

LIBRARY = """#!lua name=batching_test
redis.register_function('spin', function(keys, args)
  local until_s = os.clock() + tonumber(args[1])
  while os.clock() < until_s do end
  return 'spun'
end)
redis.register_function('echo', function(keys, args) return args[1] end)
"""
SPIN_S = 0.2
PARALLEL_MIN_CALLS = 64


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(Path(tmp_path_factory.mktemp("batching"))) as embedded:
        client = redis.Redis.from_url(embedded.url)
        client.function_load(LIBRARY, replace=True)
        client.close()
        yield embedded


def pipeline_of(url: str, deadline_s: float = 5.0, circuit: Circuit | None = None) -> AutoPipeline:
    return pipeline_and_wire(url, deadline_s, circuit)[0]


def pipeline_and_wire(
    url: str, deadline_s: float = 5.0, circuit: Circuit | None = None
) -> tuple[AutoPipeline, WireClient]:
    settings = RedisSettings(call_timeout_s=deadline_s)
    client = connect(url, settings)
    wire = wire_client(client, url, settings)
    assert wire is not None
    pipeline = AutoPipeline(client, 512, 8, deadline_s, circuit or Circuit(), None, wire, PARALLEL_MIN_CALLS)
    return pipeline, wire


def pipelines_sent() -> tuple[float, float]:
    """(pipelines, calls) counted so far by the histogram."""
    samples = {sample.name: sample.value for sample in next(iter(metrics.REDIS_PIPELINE_CALLS.collect())).samples}
    return samples["creditd_redis_pipeline_calls_count"], samples["creditd_redis_pipeline_calls_sum"]


@pytest.mark.asyncio
async def test_calls_issued_while_a_pipeline_is_out_go_together(server: EmbeddedRedis) -> None:
    pipeline = pipeline_of(server.url)
    before = pipelines_sent()
    spinning = asyncio.ensure_future(pipeline.call("spin", (), (SPIN_S,)))
    await asyncio.sleep(0.05)  # the spin is out, Redis busy with it
    echoes = []
    for n in range(20):  # a few at a time, over several loop turns: still one pipeline
        echoes.append(asyncio.ensure_future(pipeline.call("echo", (), (f"e{n}",))))
        if n % 5 == 4:
            await asyncio.sleep(0.01)
    assert await spinning == b"spun"
    assert await asyncio.gather(*echoes) == [f"e{n}".encode() for n in range(20)]
    pipelines, calls = pipelines_sent()
    assert (pipelines - before[0], calls - before[1]) == (2, 21)
    await pipeline.close()


@pytest.mark.asyncio
async def test_enough_calls_go_at_once_beside_the_pipeline_out(server: EmbeddedRedis) -> None:
    pipeline = pipeline_of(server.url)
    before = pipelines_sent()
    spinning = asyncio.ensure_future(pipeline.call("spin", (), (SPIN_S,)))
    await asyncio.sleep(0.05)
    many = await asyncio.wait_for(
        pipeline.call_many([("echo", (), (f"m{n}",)) for n in range(PARALLEL_MIN_CALLS)]), SPIN_S * 10
    )
    assert many == [f"m{n}".encode() for n in range(PARALLEL_MIN_CALLS)]
    assert not spinning.done() or (await spinning) == b"spun"
    await spinning
    pipelines, calls = pipelines_sent()
    assert (pipelines - before[0], calls - before[1]) == (2, 1 + PARALLEL_MIN_CALLS)
    await pipeline.close()


@pytest.mark.asyncio
async def test_waiting_calls_fail_at_once_when_the_circuit_opens(server: EmbeddedRedis) -> None:
    deadline_s = 0.3
    pipeline = pipeline_of(server.url, deadline_s)
    started = time.monotonic()
    spinning = asyncio.ensure_future(pipeline.call("spin", (), (deadline_s * 3,)))
    await asyncio.sleep(0.05)
    waiting = asyncio.ensure_future(pipeline.call("echo", (), ("late",)))
    with pytest.raises(Unavailable, match="no answer within"):
        await spinning
    with pytest.raises(Unavailable, match="refused at once"):
        await waiting
    assert time.monotonic() - started < deadline_s + 0.2  # the waiting call did not get a deadline of its own
    await asyncio.sleep(deadline_s * 3)  # Redis free again before the next test
    await pipeline.close()


@pytest.mark.asyncio
async def test_a_pipeline_sent_at_once_fails_at_its_deadline_and_the_next_reconnects(server: EmbeddedRedis) -> None:
    deadline_s, circuit = 0.3, Circuit()
    pipeline = pipeline_of(server.url, deadline_s, circuit)
    assert await pipeline.call("echo", (), ("connect",)) == b"connect"  # the connection is open now
    # the deadline counts on the loop's clock (uvloop's: read once an iteration, to the millisecond),
    # which may stand a fraction of a millisecond behind time.monotonic() when the call is issued
    clock = asyncio.get_running_loop().time
    started = clock()
    with pytest.raises(Unavailable, match="no answer within"):
        await pipeline.call("spin", (), (deadline_s * 3,))
    assert deadline_s <= round(clock() - started, 3) < deadline_s + 0.2
    assert circuit.is_open
    await asyncio.sleep(deadline_s * 3)  # Redis free again
    circuit.close()
    assert await pipeline.call("echo", (), ("again",)) == b"again"
    await pipeline.close()


@pytest.mark.asyncio
async def test_a_pipeline_fails_at_its_own_deadline_not_at_an_earlier_pipelines(server: EmbeddedRedis) -> None:
    deadline_s, circuit = 0.4, Circuit()
    pipeline = pipeline_of(server.url, deadline_s, circuit)
    assert await pipeline.call("echo", (), ("connect",)) == b"connect"  # the task's way: it connects
    assert await pipeline.call("echo", (), ("arm",)) == b"arm"  # at once: arms the timer for its deadline
    await asyncio.sleep(deadline_s / 2)
    clock = asyncio.get_running_loop().time
    started = clock()
    with pytest.raises(Unavailable, match="no answer within"):
        # the timer fires at the first call's deadline, half-way through this one's, and waits on
        await pipeline.call("spin", (), (deadline_s * 3,))
    assert deadline_s <= round(clock() - started, 3) < deadline_s + 0.2
    await asyncio.sleep(deadline_s * 3)  # Redis free again
    circuit.close()
    assert await pipeline.call("echo", (), ("again",)) == b"again"
    await pipeline.close()


@pytest.mark.asyncio
async def test_a_pipeline_whose_connection_is_lost_under_it_is_sent_again(server: EmbeddedRedis) -> None:
    pipeline, wire = pipeline_and_wire(server.url)
    assert await pipeline.call("echo", (), ("connect",)) == b"connect"
    before = pipelines_sent()
    spinning = asyncio.ensure_future(pipeline.call("spin", (), (SPIN_S,)))
    await asyncio.sleep(0.05)  # written, Redis busy with it
    wire.reset("the test cut the connection")
    assert await spinning == b"spun"  # from the second sending, on a new connection
    pipelines, calls = pipelines_sent()
    assert (pipelines - before[0], calls - before[1]) == (2, 2)
    assert await pipeline.call("echo", (), ("after",)) == b"after"
    await pipeline.close()
