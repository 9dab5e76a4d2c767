"""The Prometheus endpoint (--metrics-listen, /metrics) and the state metrics read from Redis at
scrape time; the metrics themselves are defined in creditd.metrics."""

from __future__ import annotations

import errno
import functools
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIServer

import redis
from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from creditd.config.settings import RedisSettings
from creditd.core.feed import parse_position, stream_cursor
from creditd.core.usage import OLDEST
from creditd.core.usage_log import EXPORTED_POSITION_KEY, redis_time_ms
from creditd.errors import CreditdError, StartupError
from creditd.metrics import CHARGES, REGISTRY
from creditd.store.connection import AnySyncRedis, connect_sync
from creditd.store.keys import deadlines_of_partition, events_of_partition, stats_of_partition, usage_of_partition
from creditd.store.replies import as_text
from creditd.v1 import creditd_pb2 as pb

SCRAPE_TIMEOUT_S = 2.0
REQUEST_TYPE_NAMES: dict[int, str] = {value: name for name, value in pb.ChargeRequest.RequestType.items()}
RESULT_NAMES: dict[int, str] = {value: name for name, value in pb.ResultCode.items()}
STATUS_NAMES = [name for name, value in pb.AccountStatus.items() if value]


@functools.cache
def _charges_counter(request_type: int, result: int) -> Any:
    # labels() looks its child up under a lock each time; the pairs are a small fixed set.
    return CHARGES.labels(REQUEST_TYPE_NAMES.get(request_type, "UNKNOWN"), RESULT_NAMES.get(result, "UNKNOWN"))


def count_charge(request_type: int, result: int) -> None:
    _charges_counter(request_type, result).inc()


class StateCollector(Collector):
    """Cluster-wide state, read from Redis at scrape time (one pipelined round trip)."""

    def __init__(self, client: AnySyncRedis, partitions: int) -> None:
        self._client = client
        self._partitions = partitions

    def collect(self) -> Iterator[Metric]:
        pipe = self._client.pipeline(transaction=False)
        for partition in range(self._partitions):
            pipe.hgetall(stats_of_partition(partition))
            pipe.zcard(deadlines_of_partition(partition))
            pipe.xlen(events_of_partition(partition))
        try:
            replies = pipe.execute()
        except (redis.RedisError, OSError):
            return  # Redis away: creditd_redis_up says so; no stale numbers
        stats: dict[str, int] = {}
        open_sessions = events = 0
        for index in range(0, len(replies), 3):
            for field, value in replies[index].items():
                stats[field.decode()] = stats.get(field.decode(), 0) + int(value)
            open_sessions += replies[index + 1]
            events += replies[index + 2]
        yield GaugeMetricFamily("creditd_open_sessions", "Open gateway sessions (cluster-wide)", value=open_sessions)
        yield GaugeMetricFamily(
            "creditd_reserved_minor",
            "Money reserved by open sessions, minor units (cluster-wide)",
            value=stats.get("reserved_minor", 0),
        )
        transitions = CounterMetricFamily(
            "creditd_status_transitions", "Accounts entering each status (cluster-wide)", labels=["status"]
        )
        for status in STATUS_NAMES:
            transitions.add_metric([status], stats.get(f"entered:{status}", 0))
        yield transitions
        yield CounterMetricFamily(
            "creditd_accounts_created", "Accounts created (cluster-wide)", value=stats.get("accounts_created", 0)
        )
        yield GaugeMetricFamily(
            "creditd_event_stream_entries", "Entries in the event streams (cluster-wide)", value=events
        )
        yield from self._usage_metrics()

    def _usage_metrics(self) -> Iterator[Metric]:
        """Usage records kept, and the age of the oldest one no exporter has written yet (what the
        retention trim would lose next if exports stopped)."""
        try:
            exported = self._client.get(EXPORTED_POSITION_KEY)
            after = parse_position(as_text(exported), self._partitions) if exported else OLDEST
            pipe = self._client.pipeline(transaction=False)
            for partition in range(self._partitions):
                pipe.xlen(usage_of_partition(partition))
                pipe.xrange(usage_of_partition(partition), f"({stream_cursor(after, partition)}", "+", count=1)
            replies = pipe.execute()
            now_ms = redis_time_ms(self._client)
        except (redis.RedisError, OSError, CreditdError):
            return
        oldest_ms = min(
            (int(as_text(entries[0][0]).split("-")[0]) for entries in replies[1::2] if entries), default=None
        )
        yield GaugeMetricFamily("creditd_usage_records", "Usage records kept (cluster-wide)", value=sum(replies[0::2]))
        yield GaugeMetricFamily(
            "creditd_usage_unexported_age_seconds",
            "Age of the oldest usage record not yet exported (0: none waiting)",
            value=max(0.0, (now_ms - oldest_ms) / 1000) if oldest_ms is not None else 0.0,
        )


class MetricsEndpoint:
    """The HTTP endpoint; the state collector gets its own synchronous Redis connection, because
    prometheus_client scrapes on its own thread."""

    def __init__(self, listen: str, redis_url: str, settings: RedisSettings) -> None:
        host, _, port = listen.rpartition(":")
        self._host, self._port = host or "127.0.0.1", int(port)
        self._client = connect_sync(redis_url, settings, socket_timeout_s=SCRAPE_TIMEOUT_S)
        self._collector = StateCollector(self._client, settings.partitions)
        self._server: WSGIServer | None = None
        self.port = 0

    def start(self) -> int:
        REGISTRY.register(self._collector)
        try:
            self._server, _ = start_http_server(self._port, self._host, registry=REGISTRY)
        except OSError as error:
            what = "is in use" if error.errno == errno.EADDRINUSE else f"cannot be bound: {error.strerror}"
            raise StartupError(f"metrics: port {self._host}:{self._port} {what}") from None
        self.port = self._server.server_port
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        REGISTRY.unregister(self._collector)
        self._client.close()
