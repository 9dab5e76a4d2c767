"""`creditd chf`'s lifecycle: the Redis connection, the function library and the auto-pipeline as the
gRPC server has them, and the app on granian's embedded HTTP server (RSGI) in the same event loop.

granian was chosen by measurement (loadtest/chf_servers.py, docs/chf.md): it spent less CPU per request
than hypercorn on the same app, and its HTTP/2 connections are not ended after a count of requests
(hypercorn's keep_alive_max_requests, 1 000 by default, ends one with a GOAWAY).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from pathlib import Path
from typing import Any

from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings, HTTP2Settings
from granian.server.embed import Server
from redis.exceptions import RedisError

from creditd.chf.app import ChfApp
from creditd.chf.notify import Notifications
from creditd.clock import Clock, wait_or_stop
from creditd.config.settings import SecuritySettings, Settings
from creditd.core.charging import Charging
from creditd.errors import ConfigError, CreditdError, StartupError
from creditd.store.calls import Calls
from creditd.store.circuit import Circuit
from creditd.store.connection import (
    AnyRedis,
    on_every_primary,
    redact,
)
from creditd.store.library import ensure_library
from creditd.store.opened import open_store
from creditd.store.pipeline import AutoPipeline

log = logging.getLogger(__name__)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
CLOSE_TIMEOUT_S = 0.5


def split_listen(listen: str, tls: bool) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"chf.listen: HOST:PORT, got {listen!r}")
    if not tls and host not in LOOPBACK_HOSTS and not host.startswith("127."):
        raise ConfigError(
            f"chf.listen: cleartext Nchf is for loopback only; {listen} needs [security] tls_cert_path, "
            "tls_key_path and tls_client_ca_path"
        )
    return host, int(port)


def tls_options(security: SecuritySettings, client_ca_path: str = "") -> dict[str, Any]:
    """granian's TLS: the server's certificate and key, and client certificates required, signed by
    the client CA (`client_ca_path`, [chf] tls_client_ca_path; else the gRPC edge's); ALPN offers h2
    and http/1.1. Files are checked here, so that a missing one is named at start-up."""
    if not security.tls:
        if client_ca_path:
            raise ConfigError(
                "chf.tls_client_ca_path: needs TLS ([security] tls_cert_path, tls_key_path and tls_client_ca_path)"
            )
        return {}
    client_ca_path = client_ca_path or security.tls_client_ca_path
    paths = {
        "certificate": security.tls_cert_path,
        "key": security.tls_key_path,
        "client CA": client_ca_path,
    }
    for what, path in paths.items():
        if not path or b"-----BEGIN " not in _read(path, what):
            raise StartupError(f"tls: the {what} {path or '(not set)'} is not a PEM file")
    return {
        "ssl_cert": Path(security.tls_cert_path),
        "ssl_key": Path(security.tls_key_path),
        "ssl_ca": Path(client_ca_path),
        "ssl_client_verify": True,
    }


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise StartupError(f"tls: cannot read the {what} {path}: {error.strerror}") from None


def check_port_free(host: str, port: int) -> None:
    """granian reports a port it cannot bind only in its log; say it here, naming the port."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise StartupError(f"chf.listen: port {host}:{port} cannot be bound: {error.strerror}") from None


class ChfServer:
    def __init__(self, settings: Settings, redis_url: str, clock: Clock | None = None) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self.clock = clock or Clock()
        self.host, self.port = split_listen(settings.chf.listen, settings.security.tls)
        self._redis: AnyRedis | None = None
        self._pipeline: AutoPipeline | None = None
        self._http: Server | None = None
        self._serving: asyncio.Task[None] | None = None
        self._circuit = Circuit()
        self._stopping = asyncio.Event()
        self._probing: asyncio.Task[None] | None = None
        self._notifying: asyncio.Task[None] | None = None
        self.notifications: Notifications | None = None
        self._library_source = ""

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        settings, redis_settings = self.settings, self.settings.redis
        check_port_free(self.host, self.port)
        tls = tls_options(settings.security, settings.chf.tls_client_ca_path)
        opened = await open_store(settings, self.redis_url, self._circuit)
        self._redis, self._pipeline, self._library_source = opened.redis, opened.pipeline, opened.library_source
        functions = opened.functions
        charging = Charging(Calls(redis_settings.partitions), functions, self.clock)
        chf = settings.chf
        owner = f"chf-{socket.gethostname()}-{os.getpid()}-{self.port}"[:64]
        self.notifications = Notifications(self._redis, functions, settings, owner)
        if chf.notify.enabled:
            await self.notifications.prepare()
        self._http = Server(
            ChfApp(charging, settings, self.notifications if chf.notify.enabled else None),
            address=self.host,
            port=self.port,
            interface=Interfaces.RSGI,
            http=HTTPModes.auto,
            websockets=False,
            http1_settings=HTTP1Settings(keep_alive=True),
            http2_settings=HTTP2Settings(
                max_concurrent_streams=chf.max_concurrent_streams,
                keep_alive_interval=chf.keep_alive_interval_s * 1000,
                keep_alive_timeout=chf.keep_alive_timeout_s,
            ),
            log_enabled=False,
            **tls,
        )
        self._serving = asyncio.create_task(self._http.serve(), name="chf-http")
        await self._wait_listening()
        self._probing = asyncio.create_task(self._probe_redis(), name="chf-redis-probe")
        if chf.notify.enabled:
            self._notifying = asyncio.create_task(self.notifications.run(self._stopping), name="chf-notify")
        scheme = "https (mutual TLS; h2, http/1.1)" if settings.security.tls else "http (h2c, http/1.1)"
        log.info("creditd chf listening on %s:%d, %s; redis %s", self.host, self.port, scheme, redact(self.redis_url))

    async def _wait_listening(self) -> None:
        for _ in range(200):
            if self._serving is not None and self._serving.done():
                self._serving.result()
                raise StartupError(f"chf.listen: the HTTP server on {self.host}:{self.port} stopped at start")
            try:
                _, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                await asyncio.sleep(0.025)
                continue
            writer.close()
            return
        raise StartupError(f"chf.listen: nothing listens on {self.host}:{self.port} after 5 s")

    async def _probe_redis(self) -> None:
        """While the circuit is open (Redis gave a call no answer in time), requests get 503 at once;
        each interval a PING and the library check, bounded by the call time-out, probe Redis, and the
        first answered closes the circuit."""
        redis_settings = self.settings.redis
        while not self._stopping.is_set():
            await wait_or_stop(self._stopping, redis_settings.health_check_interval_s)
            if not self._circuit.is_open or self._redis is None:
                continue
            try:
                async with asyncio.timeout(redis_settings.call_timeout_s):
                    await on_every_primary(self._redis, "PING")
                    await ensure_library(self._redis, self._library_source)
            except (TimeoutError, RedisError, OSError, CreditdError) as error:
                log.warning("redis probe failed, requests still refused: %s", error or "no answer in time")
                continue
            self._circuit.close()

    async def stop(self) -> None:
        if self._stopping.is_set():  # stopped already (a failed start stops what it had started)
            return
        self._stopping.set()
        for task in (self._probing, self._notifying):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._http is not None and self._serving is not None:
            self._http.stop()  # type: ignore[no-untyped-call]
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self._serving), self.settings.chf.drain_timeout_s + 1)
            self._serving.cancel()
        if self._pipeline is not None:
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(self._pipeline.close(), CLOSE_TIMEOUT_S)
        if self._redis is not None:
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(self._redis.aclose(), CLOSE_TIMEOUT_S)
        log.info("creditd chf stopped")

    async def wait(self) -> None:
        assert self._serving is not None, "not started"
        await self._serving
