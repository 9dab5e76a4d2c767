"""Health that follows Redis: NOT_SERVING while Redis does not answer, SERVING again when it does.

Every check pings every primary and makes sure each holds this library version (one FCALL_RO per
primary): a Sentinel-promoted replica, a cluster's new primary or a server restarted without its
data gets the library before health says SERVING again.

Each check is bounded by redis.call_timeout_s: a Redis that stops answering (frozen, or behind a path
that drops packets) turns health NOT_SERVING within health_check_interval_s + call_timeout_s, and
opens the circuit of store/circuit.py. The check is also the circuit's probe: one that succeeds
closes it, so requests flow again within health_check_interval_s of Redis answering.

Each check also compares the server's clock with Redis' TIME: beyond redis.max_clock_skew_ms the
circuit stays open and health NOT_SERVING, so a server with a wrong clock cannot pull deadlines,
ladder steps or expiry early (docs/design.md, Where time comes from).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from grpc_health.v1 import health, health_pb2
from redis.exceptions import RedisError

from creditd import metrics
from creditd.clock import Clock, wait_or_stop
from creditd.errors import CreditdError
from creditd.store.circuit import Circuit
from creditd.store.connection import AnyRedis, on_every_primary, redis_time_ms
from creditd.store.library import ensure_library

log = logging.getLogger(__name__)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class RedisHealth:
    def __init__(
        self,
        client: AnyRedis,
        servicer: health.aio.HealthServicer,
        services: Sequence[str],
        library_source: str,
        interval_s: float,
        timeout_s: float,
        circuit: Circuit,
        clock: Clock,
        max_clock_skew_ms: int,
    ) -> None:
        self._timeout_s = timeout_s
        self._circuit = circuit
        self._clock = clock
        self._max_clock_skew_ms = max_clock_skew_ms
        self._client = client
        self._servicer = servicer
        self._services = ("", *services)
        self.library_source = library_source
        self._interval_s = interval_s
        self.serving = True

    async def _set(self, status: int) -> None:
        for name in self._services:
            await self._servicer.set(name, status)

    async def _probe(self) -> str | None:
        """Why this server must not serve although Redis answers (its clock), or None."""
        await on_every_primary(self._client, "PING")
        if await ensure_library(self._client, self.library_source):
            log.warning("redis: a primary lacked the function library; loaded it")
        before_ms = self._clock.now_ms()
        redis_ms = await redis_time_ms(self._client)
        after_ms = self._clock.now_ms()
        skew_ms = (before_ms + after_ms) // 2 - redis_ms
        metrics.CLOCK_SKEW.set(skew_ms / 1000)
        allowed_ms = self._max_clock_skew_ms + (after_ms - before_ms) // 2
        if self._max_clock_skew_ms and abs(skew_ms) > allowed_ms:
            side = "ahead of" if skew_ms > 0 else "behind"
            return (
                f"clock: this server's clock is {abs(skew_ms)} ms {side} Redis' TIME, beyond "
                f"redis.max_clock_skew_ms ({self._max_clock_skew_ms} ms)"
            )
        return None

    async def check_once(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout_s):
                refusal = await self._probe()
        except TimeoutError:
            metrics.REDIS_TIMEOUTS.labels("health").inc()
            self._circuit.trip(f"redis gave the health check no answer within {self._timeout_s:g} s")
            return await self._down(f"no answer within {self._timeout_s:g} s")
        except (RedisError, OSError, CreditdError) as error:
            return await self._down(str(error))
        if refusal is not None:
            self._circuit.trip(refusal)
            return await self._down(refusal)
        self._circuit.close()
        metrics.REDIS_UP.set(1)
        if not self.serving:
            log.info("redis reachable again, health SERVING")
            self.serving = True
            await self._set(SERVING)
        return True

    async def _down(self, why: str) -> bool:
        metrics.REDIS_UP.set(0)
        if self.serving:
            log.error("redis unreachable, health NOT_SERVING: %s", why)
            self.serving = False
            await self._set(NOT_SERVING)
        return False

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            await self.check_once()
            await wait_or_stop(stopping, self._interval_s)
