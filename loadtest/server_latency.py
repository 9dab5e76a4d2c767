"""creditd's own view of a phase's latency: its `creditd_request_duration_seconds` histogram (from the
handler's start to its end) read from each worker's /metrics before and after the phase. Beside the
load generator's latencies it tells the server's share of a tail from what the generator, gRPC and
the two shared cores add: between identical runs the generator's p99 can move fourfold while the
server's own share stays put."""

from __future__ import annotations

import math
import urllib.request
from collections.abc import Iterator, Sequence

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

DURATION_BUCKET = "creditd_request_duration_seconds_bucket"
SCRAPE_TIMEOUT_S = 5.0
WITHIN_S = 0.010  # the p99 target


def scraped_samples(url: str) -> Iterator[Sample]:
    """Every sample of one /metrics page."""
    with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as answer:
        text = answer.read().decode()
    for family in text_string_to_metric_families(text):
        yield from family.samples


def cumulative_counts(metrics_urls: Sequence[str], method: str) -> dict[float, float]:
    """The method's requests at or under each bucket bound (seconds; inf last), summed over the workers."""
    counts: dict[float, float] = {}
    for url in metrics_urls:
        for sample in scraped_samples(url):
            if sample.name == DURATION_BUCKET and sample.labels.get("method") == method:
                bound = float(sample.labels["le"])
                counts[bound] = counts.get(bound, 0.0) + sample.value
    return counts


def phase_latency(before: dict[float, float], after: dict[float, float]) -> dict[str, float]:
    """Of the requests between the two reads: the share handled within WITHIN_S, and the smallest
    bucket bound (ms) under which 99 % were handled."""
    during = {bound: after[bound] - before.get(bound, 0.0) for bound in sorted(after)}
    total = during.get(math.inf, 0.0)
    if not total:
        return {}
    p99_bound_s = next(bound for bound, count in during.items() if count >= 0.99 * total)
    return {
        "handled within 10 ms": round(during.get(WITHIN_S, 0.0) / total, 4),
        "p99 at most ms": p99_bound_s * 1000,
    }
