"""The garbage collector of a serving process: what exists when serving begins is frozen (left out of
every later collection, so a full collection no longer walks the 60 000-odd start-up objects) and
every collection's pause is measured by generation. Proved in this process (an object made before
the freeze is no longer among those the collector tracks; one collection of generation 1 adds one
sample to that generation's histogram) and on a real `creditd serve` process, whose /metrics show
the frozen count and pauses after some traffic."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from creditd import collector, metrics
from creditd.devtools.ports import free_port
from creditd.v1 import creditd_pb2 as pb
from creditd.v1 import creditd_pb2_grpc as pb_grpc
from tests.processes import start_server, stop, wait_serving
from tests.test_metrics import samples, scrape, value

PAUSE_COUNT = "creditd_collector_pause_seconds_count"
# The imports of a serving process alone are some 60 000 objects; a freeze that missed them would
# leave a few hundred.
MIN_FROZEN_BY_SERVE = 20_000


def thaw() -> None:
    """Undoes freeze_after_start_up here: the rest of the test session collects as before."""
    gc.callbacks.remove(collector._on_collection)
    gc.unfreeze()


@pytest.fixture
def frozen_here() -> Iterator[int]:
    frozen = collector.freeze_after_start_up()
    try:
        yield frozen
    finally:
        thaw()


def pause_count(generation: int) -> float:
    return metrics.REGISTRY.get_sample_value(PAUSE_COUNT, {"generation": str(generation)}) or 0.0


def test_objects_alive_at_the_freeze_are_left_out_of_collections() -> None:
    made_before = [object()]
    frozen = collector.freeze_after_start_up()
    try:
        made_after = [object()]
        tracked = {id(tracked_object) for tracked_object in gc.get_objects()}
        assert id(made_before) not in tracked
        assert id(made_after) in tracked
        assert frozen == gc.get_freeze_count() > 0
        assert metrics.REGISTRY.get_sample_value("creditd_collector_frozen_objects") == frozen
    finally:
        thaw()


def test_every_collection_is_measured_by_generation(frozen_here: int) -> None:
    before = [pause_count(generation) for generation in range(3)]
    gc.collect(1)
    assert pause_count(1) == before[1] + 1
    gc.collect(2)
    assert pause_count(2) == before[2] + 1
    assert collector.freeze_after_start_up() >= frozen_here
    assert gc.callbacks.count(collector._on_collection) == 1, "a second call measured each pause twice"


@pytest.mark.asyncio
async def test_a_serving_process_freezes_its_start_up_and_reports_pauses(tmp_path: Path) -> None:
    data_dir, port, metrics_port = tmp_path / "data", free_port(), free_port()
    process = start_server(data_dir, port, "--metrics-listen", f"127.0.0.1:{metrics_port}")
    try:
        await asyncio.to_thread(wait_serving, port, process)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            accounts = pb_grpc.AccountsStub(channel)
            for number in range(50):
                request = pb.GetAccountRequest(account_id=f"6682323{number:04d}")
                with pytest.raises(grpc.aio.AioRpcError):
                    await accounts.GetAccount(request)
        found = samples(await asyncio.to_thread(scrape, metrics_port))
        assert value(found, "creditd_collector_frozen_objects") >= MIN_FROZEN_BY_SERVE
        assert value(found, PAUSE_COUNT, generation="0") > 0
    finally:
        stop(process, data_dir)
