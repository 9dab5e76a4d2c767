"""The payments front's Starlette application and its server: the agents' API, PromptPay, and
/metrics (creditd's registry, the payments' counters among them)."""

from __future__ import annotations

import asyncio
import logging

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from creditd.clock import Clock
from creditd.config.settings import Settings
from creditd.errors import ConfigError
from creditd.metrics import REGISTRY
from creditd.paygate.agent_api import agent_routes
from creditd.paygate.promptpay_api import promptpay_routes
from creditd.payments.agents import Agents
from creditd.payments.money import Money
from creditd.payments.promptpay import PromptPay
from creditd.store.connection import AnyRedis

log = logging.getLogger(__name__)


async def metrics_page(_request: Request) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


class InFlightLimit:
    """ASGI middleware: at most `limit` HTTP requests inside the application at once."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.slots = asyncio.Semaphore(limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        async with self.slots:
            await self.app(scope, receive, send)


def create_app(settings: Settings, client: AnyRedis, clock: Clock | None = None) -> Starlette:
    money = Money(client, settings.redis.partitions, clock or Clock(), settings.limits.topup_key_retention_s)
    routes = [
        *agent_routes(Agents(money, settings.payments)),
        *promptpay_routes(PromptPay(money, settings.payments)),
        Route("/metrics", metrics_page),
    ]
    limit = min(settings.payments.max_in_flight, settings.redis.max_connections)
    return Starlette(routes=routes, middleware=[Middleware(InFlightLimit, limit=limit)])


def server_of(
    settings: Settings, client: AnyRedis, port: int | None = None, clock: Clock | None = None
) -> uvicorn.Server:
    """A uvicorn server of the front on payments.listen (or on this port of loopback)."""
    host, _, listen_port = settings.payments.listen.rpartition(":")
    if not listen_port.isdigit():
        raise ConfigError("payments.listen: HOST:PORT")
    config = uvicorn.Config(
        create_app(settings, client, clock),
        host=host or "127.0.0.1",
        port=int(listen_port) if port is None else port,
        lifespan="off",
        log_level="warning",
    )
    return uvicorn.Server(config)


async def serve(settings: Settings, client: AnyRedis) -> None:
    server = server_of(settings, client)
    log.info("payments front on http://%s (%d agent(s))", settings.payments.listen, len(settings.payments.agents))
    try:
        await server.serve()
    finally:
        await asyncio.shield(client.aclose())
