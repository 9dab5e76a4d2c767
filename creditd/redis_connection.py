"""Connecting to Redis and checking it is fit to hold money: reachable, no eviction, AOF on."""

from __future__ import annotations

import logging
import urllib.parse

import redis.asyncio as redis_asyncio
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from creditd.errors import ConfigError, Unavailable
from creditd.settings import RedisSettings

log = logging.getLogger(__name__)

RETRY_ATTEMPTS = 3


def redact(url: str) -> str:
    """The URL without its password, for logs and error messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def connect(url: str, settings: RedisSettings) -> redis_asyncio.Redis:
    # Retries resend a call that may already have run: safe, because every function is idempotent.
    pool = redis_asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=settings.max_connections,
        timeout=settings.call_timeout_s,
        socket_timeout=settings.call_timeout_s,
        socket_connect_timeout=settings.call_timeout_s,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.02), RETRY_ATTEMPTS),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    return redis_asyncio.Redis(connection_pool=pool)


async def check_fit_for_money(client: redis_asyncio.Redis, url: str) -> None:
    """Refuses a Redis that may evict keys; warns when it does not persist writes."""
    try:
        await client.ping()
    except (RedisError, OSError) as error:
        raise Unavailable(f"redis: cannot reach {redact(url)}: {error}") from None
    try:
        policy = (await client.config_get("maxmemory-policy")).get("maxmemory-policy")
        appendonly = (await client.config_get("appendonly")).get("appendonly")
    except ResponseError as error:
        log.warning("redis: cannot read CONFIG (%s); make sure maxmemory-policy is noeviction and AOF is on", error)
        return
    if policy != "noeviction":
        raise ConfigError(
            f"redis: maxmemory-policy is {policy!r}; creditd needs 'noeviction' (evicted keys are lost money)"
        )
    if appendonly != "yes":
        log.warning("redis: AOF is OFF at %s: acknowledged top-ups and charges can be lost on a restart", redact(url))
