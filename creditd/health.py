"""Health that follows Redis: NOT_SERVING while Redis does not answer, SERVING again when it does.

On recovery the function library is checked and loaded again if Redis lost it (a restart without
persistence, a new primary), so requests work as soon as health says SERVING.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import redis.asyncio as redis_asyncio
from grpc_health.v1 import health, health_pb2
from redis.exceptions import RedisError

from creditd import metrics
from creditd.library import ensure_library
from creditd.sweeper import wait_or_stop

log = logging.getLogger(__name__)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class RedisHealth:
    def __init__(
        self,
        client: redis_asyncio.Redis,
        servicer: health.aio.HealthServicer,
        services: Sequence[str],
        library_source: str,
        interval_s: float,
    ) -> None:
        self._client = client
        self._servicer = servicer
        self._services = ("", *services)
        self.library_source = library_source
        self._interval_s = interval_s
        self.serving = True

    async def _set(self, status: int) -> None:
        for name in self._services:
            await self._servicer.set(name, status)

    async def check_once(self) -> bool:
        try:
            await self._client.ping()
            if not self.serving:
                await ensure_library(self._client, self.library_source)
        except (RedisError, OSError) as error:
            metrics.REDIS_UP.set(0)
            if self.serving:
                log.error("redis unreachable, health NOT_SERVING: %s", error)
                self.serving = False
                await self._set(NOT_SERVING)
            return False
        metrics.REDIS_UP.set(1)
        if not self.serving:
            log.info("redis reachable again, health SERVING")
            self.serving = True
            await self._set(SERVING)
        return True

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            await self.check_once()
            await wait_or_stop(stopping, self._interval_s)
