"""The per-thread counters and histograms (creditd/per_thread_metrics.py) expose what
prometheus_client's Counter and Histogram expose for the same updates, line for line (the `_created`
timestamps aside), and lose no update when many threads make them at once: each pair of metrics is
fed the same updates, the text of /metrics compared, and eight threads' updates summed exactly
after the threads ended. Misuse (a negative increment, label values that do not fit, buckets out of
order) is refused as prometheus_client refuses it."""

from __future__ import annotations

import re
import threading

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from creditd.per_thread_metrics import PerThreadCounter, PerThreadHistogram

BUCKETS = (0.001, 0.01, 0.1, 1.0)


def exposition(registry: CollectorRegistry) -> list[str]:
    """The text exposition, each `_created` sample's value replaced (a clock reading)."""
    text = generate_latest(registry).decode()
    return [re.sub(r"(_created(\{[^}]*\})?) .*", r"\1 <time>", line) for line in text.splitlines()]


def feed(
    counter: Counter | PerThreadCounter,
    histogram: Histogram | PerThreadHistogram,
    plain: Histogram | PerThreadHistogram,
) -> None:
    counter.labels("Charge", "OK").inc()
    counter.labels("Charge", "OK").inc(2)
    counter.labels(method="GetAccount", result="NOT_FOUND").inc()
    for amount in (0.0005, 0.001, 0.002, 0.01, 0.5, 1.0, 3.0):
        histogram.labels("Charge").observe(amount)
    histogram.labels("GetAccount").observe(0.02)
    for size in (1, 1, 2, 5):
        plain.observe(size)


def test_the_exposition_is_prometheus_clients_own() -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    feed(
        Counter("creditd_requests", "requests", ["method", "result"], registry=theirs),
        Histogram("creditd_request_duration_seconds", "latency", ["method"], buckets=BUCKETS, registry=theirs),
        Histogram("creditd_redis_pipeline_calls", "calls", buckets=(1, 2, 4), registry=theirs),
    )
    feed(
        PerThreadCounter("creditd_requests", "requests", ["method", "result"], registry=ours),
        PerThreadHistogram("creditd_request_duration_seconds", "latency", ["method"], buckets=BUCKETS, registry=ours),
        PerThreadHistogram("creditd_redis_pipeline_calls", "calls", buckets=(1, 2, 4), registry=ours),
    )
    expected = exposition(theirs)
    assert 'creditd_requests_total{method="Charge",result="OK"} 3.0' in expected
    assert 'creditd_request_duration_seconds_bucket{le="0.001",method="Charge"} 2.0' in expected
    assert exposition(ours) == expected


def test_an_unlabelled_histogram_is_exposed_before_its_first_update() -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    Histogram("creditd_redis_pipeline_duration_seconds", "latency", buckets=BUCKETS, registry=theirs)
    PerThreadHistogram("creditd_redis_pipeline_duration_seconds", "latency", buckets=BUCKETS, registry=ours)
    assert exposition(ours) == exposition(theirs)
    assert "creditd_redis_pipeline_duration_seconds_count 0.0" in exposition(ours)


def test_no_update_is_lost_across_threads() -> None:
    registry = CollectorRegistry()
    counter = PerThreadCounter("creditd_charges", "charges", ["request_type", "result"], registry=registry)
    histogram = PerThreadHistogram("creditd_redis_pipeline_calls", "calls", buckets=(1, 2, 4), registry=registry)
    threads_count, updates = 8, 20_000
    start = threading.Barrier(threads_count)

    def work() -> None:
        start.wait()
        child = counter.labels("UPDATE", "SUCCESS")
        for number in range(updates):
            child.inc()
            histogram.observe(1 + number % 4)  # 1, 2, 3, 4: buckets le=1, le=2, le=4, le=4

    threads = [threading.Thread(target=work) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = threads_count * updates
    assert registry.get_sample_value("creditd_charges_total", {"request_type": "UPDATE", "result": "SUCCESS"}) == total
    assert registry.get_sample_value("creditd_redis_pipeline_calls_count") == total
    assert registry.get_sample_value("creditd_redis_pipeline_calls_sum") == total / 4 * (1 + 2 + 3 + 4)
    assert registry.get_sample_value("creditd_redis_pipeline_calls_bucket", {"le": "1.0"}) == total / 4
    assert registry.get_sample_value("creditd_redis_pipeline_calls_bucket", {"le": "2.0"}) == total / 2
    assert registry.get_sample_value("creditd_redis_pipeline_calls_bucket", {"le": "4.0"}) == total


def test_misuse_is_refused() -> None:
    registry = CollectorRegistry()
    counter = PerThreadCounter("creditd_requests", "requests", ["method", "result"], registry=registry)
    histogram = PerThreadHistogram(
        "creditd_request_duration_seconds", "latency", ["method"], buckets=BUCKETS, registry=registry
    )
    with pytest.raises(ValueError, match="only goes up"):
        counter.labels("Charge", "OK").inc(-1)
    with pytest.raises(ValueError, match="2 label values expected, got 1"):
        counter.labels("Charge")
    with pytest.raises(ValueError, match="has labels"):
        counter.inc()
    with pytest.raises(ValueError, match="has labels"):
        histogram.observe(0.1)
    with pytest.raises(ValueError, match="increasing"):
        PerThreadHistogram("creditd_other_seconds", "other", buckets=(1.0, 0.5), registry=registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        PerThreadCounter("creditd_requests", "again", ["method"], registry=registry)
    assert registry.get_sample_value("creditd_requests_total", {"method": "Charge", "result": "OK"}) == 0.0
