"""Server-initiated requests: the core's REAUTH and ABORT_SESSION notifications (the event feed the gRPC
WatchNotifications serves) become a Re-Auth-Request or an Abort-Session-Request to the gateway that holds
the session, over any open connection from that Origin-Host (its gateway_id). Gateways not in the peer table (gRPC
ones) are none of its business.

Every front process follows the feed from when it started; one that holds no connection to the gateway
counts `no_connection` and sends nothing. With several fronts connected to one gateway, each sends: the
gateway may re-authorise twice, which costs one more CCR-U and no money."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from redis.exceptions import RedisError

from creditd.clock import wait_or_stop
from creditd.core.feed import EventFeed
from creditd.diameter import metrics
from creditd.diameter.dictionary import Command
from creditd.diameter.peer import Closed, Connection
from creditd.errors import CreditdError

log = logging.getLogger(__name__)

RETRY_S = 1.0
COMMANDS = {"REAUTH": Command.RE_AUTH, "ABORT_SESSION": Command.ABORT_SESSION}


async def forward_notices(
    feed: EventFeed, peers: frozenset[str], connections: Callable[[], Iterable[Connection]], stopping: asyncio.Event
) -> None:
    """Until stopping; a feed failure (Redis away) starts it again from then, after a second."""
    while not stopping.is_set():
        try:
            await _forward(feed, peers, connections, stopping)
        except (CreditdError, RedisError, OSError) as error:
            log.warning("diameter notices: the event feed failed (%s); following it again from now", error)
            await wait_or_stop(stopping, RETRY_S)


async def _forward(
    feed: EventFeed, peers: frozenset[str], connections: Callable[[], Iterable[Connection]], stopping: asyncio.Event
) -> None:
    async for event in feed.follow(None, stopping):
        command = COMMANDS.get(event.fields.get("kind", ""))
        gateway_id, session_id = event.fields.get("gateway_id", ""), event.fields.get("session_id", "")
        if command is None or gateway_id not in peers or not session_id:
            continue
        held = [connection for connection in connections() if connection.peer_host == gateway_id]
        label = "RAR" if command == Command.RE_AUTH else "ASR"
        if not held:
            metrics.SERVER_REQUESTS.labels(metrics.UNKNOWN_PEER, label, "no_connection").inc()
            continue
        try:
            await held[0].ask_peer(command, session_id)
        except (Closed, ConnectionError, OSError) as error:
            log.warning("diameter %s for %s to %s not sent: %s", label, session_id, gateway_id, error)
