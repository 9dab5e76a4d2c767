"""Diameter front metrics. Label values are bounded: `peer` is an Origin-Host of the configured peer table
(or "unknown" before a CER is accepted), `command` a fixed vocabulary, `result` a Diameter result code."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from creditd.metrics import LATENCY_BUCKETS_S, REGISTRY
from creditd.per_thread_metrics import PerThreadCounter, PerThreadHistogram

UNKNOWN_PEER = "unknown"

CONNECTIONS = Gauge(
    "creditd_diameter_connections", "Open Diameter connections by peer (state Open)", ["peer"], registry=REGISTRY
)
# updated by every request: kept per thread, without a lock (creditd/per_thread_metrics.py)
REQUESTS = PerThreadCounter(
    "creditd_diameter_requests",
    "Diameter requests answered by peer, command (CCR-I/U/T/E, CER, DWR, DPR, other) and Result-Code",
    ["peer", "command", "result"],
    registry=REGISTRY,
)
REQUEST_DURATION = PerThreadHistogram(
    "creditd_diameter_request_duration_seconds",
    "Time from a request's last byte read to its answer written, by peer and command",
    ["peer", "command"],
    buckets=LATENCY_BUCKETS_S,
    registry=REGISTRY,
)
WATCHDOG_FAILURES = Counter(
    "creditd_diameter_watchdog_failures", "Connections closed for an unanswered DWR", ["peer"], registry=REGISTRY
)
CLOSED = Counter(
    "creditd_diameter_connections_closed",
    "Connections closed by reason (handshake_timeout, oversize, slow_reader, refused, peer, shutdown, ...)",
    ["reason"],
    registry=REGISTRY,
)
SERVER_REQUESTS = Counter(
    "creditd_diameter_server_requests",
    "Re-Auth- and Abort-Session-Requests by peer, command (RAR, ASR) and outcome (sent, the answer's "
    "Result-Code, no_connection)",
    ["peer", "command", "result"],
    registry=REGISTRY,
)
