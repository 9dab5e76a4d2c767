"""Opening the store for a front end (the gRPC server, the Diameter and Nchf fronts): one Redis client,
checked fit for money, the function library loaded, and the auto-pipeline with the durability the
settings ask for. Every front goes through here, so that each answers under the same guarantees."""

from __future__ import annotations

import logging

from creditd.config.settings import Settings
from creditd.store.circuit import Circuit
from creditd.store.connection import AnyRedis, check_fit_for_money, check_waitaof, connect, wire_client
from creditd.store.durability_wait import DurabilityWait
from creditd.store.functions import Functions
from creditd.store.library import ensure_library, render_library
from creditd.store.pipeline import AutoPipeline

log = logging.getLogger(__name__)


class OpenedStore:
    """A front's way to Redis: the client, the pipeline its calls share and the functions over it."""

    def __init__(self, redis: AnyRedis, pipeline: AutoPipeline, library_source: str) -> None:
        self.redis = redis
        self.pipeline = pipeline
        self.functions = Functions(pipeline)
        self.library_source = library_source

    async def close(self) -> None:
        await self.pipeline.close()
        await self.redis.aclose()


async def open_store(settings: Settings, redis_url: str, circuit: Circuit) -> OpenedStore:
    """Connects, refuses a Redis unfit for money (evicting, or without WAITAOF when durability asks
    for it) and loads the library; the client is closed again when any of that fails."""
    redis_settings = settings.redis
    redis = connect(redis_url, redis_settings)
    try:
        await check_fit_for_money(redis, redis_url)
        library_source = render_library(settings)
        if await ensure_library(redis, library_source):
            log.info("loaded the function library into redis")
        wait = DurabilityWait(
            redis_settings.wait_replicas, redis_settings.wait_timeout_ms, redis_settings.durability == "fsync"
        )
        if wait.local_fsync:
            await check_waitaof(redis, redis_settings.wait_replicas)
    except BaseException:
        await redis.aclose()
        raise
    pipeline = AutoPipeline(
        redis,
        redis_settings.max_pipeline_commands,
        redis_settings.max_in_flight_pipelines,
        redis_settings.call_timeout_s,
        circuit,
        wait,
        wire_client(redis, redis_url, redis_settings),
        redis_settings.parallel_pipeline_min_calls,
    )
    return OpenedStore(redis, pipeline, library_source)
