"""Every metric creditd exposes, in one place, on --metrics-listen (default 127.0.0.1:9464), /metrics.

Two kinds:
- process metrics (requests, latency, Redis pipelines and errors, batch sizes, top-ups, sweeper work)
  count what this process did: sum them across processes;
- state metrics (open sessions, reserved money, status transitions, accounts created, event stream
  length) are read from Redis at scrape time, from the per-partition statistics the functions keep
  in the same calls that change them: every process reports the same cluster-wide value, so
  aggregate them with max(), never sum().
Labels come from small fixed sets (RPC names, result codes, statuses, configured channel names);
never an account id.
"""

from __future__ import annotations

from collections.abc import Iterator

import redis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from creditd.settings import RedisSettings
from creditd.store.connection import AnySyncRedis, connect_sync
from creditd.store.keys import deadlines_of_partition, events_of_partition, stats_of_partition
from creditd.v1 import creditd_pb2 as pb

REGISTRY = CollectorRegistry(auto_describe=True)
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
OTHER_CHANNEL = "other"
SCRAPE_TIMEOUT_S = 2.0

REQUESTS = Counter(
    "creditd_requests",
    "gRPC requests by method and outcome (gRPC status name)",
    ["method", "result"],
    registry=REGISTRY,
)
CHARGES = Counter(
    "creditd_charges", "Charge requests (unary and batch items) by request type and result code",
    ["request_type", "result"], registry=REGISTRY,
)  # fmt: skip
PERMISSION_DENIED = Counter(
    "creditd_permission_denied", "Calls refused for the caller's role or certificate, by method", ["method"],
    registry=REGISTRY,
)  # fmt: skip
REQUEST_DURATION = Histogram(
    "creditd_request_duration_seconds", "gRPC request latency", ["method"], buckets=LATENCY_BUCKETS_S, registry=REGISTRY
)
REDIS_PIPELINE_DURATION = Histogram(
    "creditd_redis_pipeline_duration_seconds", "Latency of one Redis pipeline round trip",
    buckets=LATENCY_BUCKETS_S, registry=REGISTRY,
)  # fmt: skip
REDIS_PIPELINE_CALLS = Histogram(
    "creditd_redis_pipeline_calls", "Function calls carried by one Redis pipeline", buckets=SIZE_BUCKETS,
    registry=REGISTRY,
)  # fmt: skip
REDIS_ERRORS = Counter(
    "creditd_redis_errors", "Failed Redis function calls by kind (unavailable, internal)", ["kind"], registry=REGISTRY
)
REDIS_UP = Gauge("creditd_redis_up", "1 while Redis answers the health check, else 0", registry=REGISTRY)
BATCH_REQUESTS = Histogram(
    "creditd_charge_batch_requests", "Requests per ChargeBatch", buckets=SIZE_BUCKETS, registry=REGISTRY
)
TOP_UPS = Counter("creditd_top_ups", "Applied top-ups (replays excluded) by channel", ["channel"], registry=REGISTRY)
TOP_UP_AMOUNT = Counter(
    "creditd_top_up_amount_minor", "Money credited by top-ups, minor units, by channel", ["channel"], registry=REGISTRY
)
SWEEPER_PASSES = Counter(
    "creditd_sweeper_passes", "Sweeper passes by result (ok, failed)", ["result"], registry=REGISTRY
)
SWEEPER_RELEASED = Counter(
    "creditd_sweeper_sessions_released", "Orphan sessions released by the sweeper", registry=REGISTRY
)
SWEEPER_CHARGED = Counter(
    "creditd_sweeper_charged_minor", "Money debited from orphan sessions (policy charge), minor units",
    registry=REGISTRY,
)  # fmt: skip
EVENTS_OUT_OF_ORDER = Counter(
    "creditd_events_out_of_order",
    "Feed events found below one already delivered (a Redis clock stepped back): delivered, but a resume "
    "position near them may skip or repeat events", registry=REGISTRY,
)  # fmt: skip
SWEEPER_PARTITIONS = Gauge("creditd_sweeper_partitions_held", "Partitions this process sweeps", registry=REGISTRY)

REQUEST_TYPE_NAMES = {value: name for name, value in pb.ChargeRequest.RequestType.items()}
RESULT_NAMES = {value: name for name, value in pb.ResultCode.items()}
STATUS_NAMES = [name for name, value in pb.AccountStatus.items() if value]


def count_charge(request_type: int, result: int) -> None:
    CHARGES.labels(REQUEST_TYPE_NAMES.get(request_type, "UNKNOWN"), RESULT_NAMES.get(result, "UNKNOWN")).inc()


def channel_label(channel: str, known_channels: frozenset[str]) -> str:
    return channel if channel in known_channels else OTHER_CHANNEL


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
            "creditd_reserved_minor", "Money reserved by open sessions, minor units (cluster-wide)",
            value=stats.get("reserved_minor", 0),
        )  # fmt: skip
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


class MetricsEndpoint:
    """The HTTP endpoint; the state collector gets its own synchronous Redis connection, because
    prometheus_client scrapes on its own thread."""

    def __init__(self, listen: str, redis_url: str, settings: RedisSettings) -> None:
        host, _, port = listen.rpartition(":")
        self._host, self._port = host or "127.0.0.1", int(port)
        self._client = connect_sync(redis_url, settings, socket_timeout_s=SCRAPE_TIMEOUT_S)
        self._collector = StateCollector(self._client, settings.partitions)
        self._server = None
        self.port = 0

    def start(self) -> int:
        REGISTRY.register(self._collector)
        self._server, _ = start_http_server(self._port, self._host, registry=REGISTRY)
        self.port = self._server.server_port
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        REGISTRY.unregister(self._collector)
        self._client.close()
