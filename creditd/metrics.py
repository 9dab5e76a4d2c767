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

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from creditd.per_thread_metrics import PerThreadCounter, PerThreadHistogram

REGISTRY = CollectorRegistry(auto_describe=True)
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
OTHER_CHANNEL = "other"

# The five a unary Charge updates are per-thread (creditd/per_thread_metrics.py): the same
# exposition, without prometheus_client's lock and bucket loop on every update.
REQUESTS = PerThreadCounter(
    "creditd_requests",
    "gRPC requests by method and outcome (gRPC status name)",
    ["method", "result"],
    registry=REGISTRY,
)
CHARGES = PerThreadCounter(
    "creditd_charges",
    "Charge requests (unary and batch items) by request type and result code",
    ["request_type", "result"],
    registry=REGISTRY,
)
PERMISSION_DENIED = Counter(
    "creditd_permission_denied",
    "Calls refused for the caller's role or certificate, by method",
    ["method"],
    registry=REGISTRY,
)
REQUEST_DURATION = PerThreadHistogram(
    "creditd_request_duration_seconds", "gRPC request latency", ["method"], buckets=LATENCY_BUCKETS_S, registry=REGISTRY
)
REDIS_PIPELINE_DURATION = PerThreadHistogram(
    "creditd_redis_pipeline_duration_seconds",
    "Latency of one Redis pipeline round trip",
    buckets=LATENCY_BUCKETS_S,
    registry=REGISTRY,
)
REDIS_PIPELINE_CALLS = PerThreadHistogram(
    "creditd_redis_pipeline_calls",
    "Function calls carried by one Redis pipeline",
    buckets=SIZE_BUCKETS,
    registry=REGISTRY,
)
REDIS_ERRORS = Counter(
    "creditd_redis_errors", "Failed Redis function calls by kind (unavailable, internal)", ["kind"], registry=REGISTRY
)
REDIS_UP = Gauge("creditd_redis_up", "1 while Redis answers the health check, else 0", registry=REGISTRY)
REDIS_TIMEOUTS = Counter(
    "creditd_redis_timeouts",
    "Redis pipelines and health probes without an answer within redis.call_timeout_s",
    ["source"],
    registry=REGISTRY,
)
REDIS_CIRCUIT_OPEN = Gauge(
    "creditd_redis_circuit_open", "1 while calls are refused at once because Redis stopped answering", registry=REGISTRY
)
CLOCK_SKEW = Gauge(
    "creditd_clock_skew_seconds",
    "This server's clock minus Redis' TIME at the last health check (positive: the server is ahead)",
    registry=REGISTRY,
)
REDIS_REFUSED = Counter(
    "creditd_redis_refused", "Function calls refused at once while the Redis circuit was open", registry=REGISTRY
)
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
    "creditd_sweeper_charged_minor",
    "Money debited from orphan sessions (policy charge), minor units",
    registry=REGISTRY,
)
EVENTS_OUT_OF_ORDER = Counter(
    "creditd_events_out_of_order",
    "Feed events found below one already delivered (a Redis clock stepped back): delivered, but a resume "
    "position near them may skip or repeat events",
    registry=REGISTRY,
)
SWEEPER_PARTITIONS = Gauge("creditd_sweeper_partitions_held", "Partitions this process sweeps", registry=REGISTRY)
# The notifier's (creditd notify); kind is one of the notice template kinds, result sent, failed
# (an outage, to be retried), dead, suppressed or deferred.
NOTICES = Counter(
    "creditd_notices", "Notices by channel, event kind and result", ["channel", "kind", "result"], registry=REGISTRY
)
NOTICE_LAG = Histogram(
    "creditd_notice_lag_seconds",
    "From the event to the notice's hand-off to its channel (quiet hours and retries included)",
    ["channel"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 43200),
    registry=REGISTRY,
)
NOTIFIER_PARTITIONS = Gauge("creditd_notifier_partitions_held", "Partitions this notifier serves", registry=REGISTRY)
# Every long-running process's (collector.py); generation is 0, 1 or 2.
# per-thread too: the collector runs every few hundred allocations, in whichever thread makes them
COLLECTOR_PAUSE = PerThreadHistogram(
    "creditd_collector_pause_seconds",
    "Python garbage collector pauses (the process' event loop stands still meanwhile), by generation",
    ["generation"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
    registry=REGISTRY,
)
COLLECTOR_FROZEN = Gauge(
    "creditd_collector_frozen_objects",
    "Objects made before serving began, left out of every collection (gc.freeze)",
    registry=REGISTRY,
)


def channel_label(channel: str, known_channels: frozenset[str]) -> str:
    return channel if channel in known_channels else OTHER_CHANNEL


# creditd chf's (TS 32.291 Nchf_ConvergedCharging): operation create, update, release, openapi or
# other; result the HTTP status (201, 200, 204, 400, 403, 404, 503, ...).
CHF_REQUESTS = Counter(
    "creditd_chf_requests", "Nchf requests by operation and HTTP status", ["operation", "result"], registry=REGISTRY
)
CHF_REQUEST_DURATION = Histogram(
    "creditd_chf_request_duration_seconds",
    "Nchf request latency, from the whole body read to the answer handed to the HTTP server",
    ["operation"],
    buckets=LATENCY_BUCKETS_S,
    registry=REGISTRY,
)
CHF_NOTIFICATIONS = Counter(
    "creditd_chf_notifications",
    "ChargingNotifyRequests by notificationType and outcome (sent, retried, failed after every attempt, "
    "dropped with the queue full, no_uri when the session's notifyUri is unknown)",
    ["kind", "result"],
    registry=REGISTRY,
)
