"""creditd's Grafana dashboard, as code (grafanalib). The committed JSON is generated from this file:

    python3 -m monitoring.dashboard        # writes monitoring/grafana/creditd.json

tests/test_monitoring.py checks that the committed JSON equals what this file generates, and that
every metric its queries name is one that creditd, the notifier and `creditd audit` export.

Process metrics are summed across processes; state metrics (read from Redis, the same in every
process) are taken with max() (creditd/metrics.py says which is which)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

from grafanalib._gen import DashboardEncoder
from grafanalib.core import (
    Dashboard,
    GridPos,
    RowPanel,
    Target,
    Templating,
    TimeSeries,
)
from grafanalib.core import (
    Template as Variable,
)

JSON_PATH = Path(__file__).parent / "grafana" / "creditd.json"
DATASOURCE = "${datasource}"
PANEL_WIDTH = 8
PANEL_HEIGHT = 8


def _series(title: str, unit: str, *queries: tuple[str, str], description: str = "") -> TimeSeries:
    return TimeSeries(
        title=title,
        description=description or None,
        dataSource=DATASOURCE,
        unit=unit,
        targets=[
            Target(expr=expression, legendFormat=legend, refId=chr(ord("A") + index))
            for index, (expression, legend) in enumerate(queries)
        ],
    )


SECTIONS: list[tuple[str, list[TimeSeries]]] = [
    (
        "Charging",
        [
            _series(
                "Charge answers by result",
                "reqps",
                ("sum by (result) (rate(creditd_charges_total[$__rate_interval]))", "{{result}}"),
                description="Per request and batch item; CREDIT_LIMIT_REACHED and USER_UNKNOWN are the service "
                "working, UNABLE_TO_COMPLY is a fault.",
            ),
            _series(
                "gRPC requests by method and status",
                "reqps",
                ("sum by (method, result) (rate(creditd_requests_total[$__rate_interval]))", "{{method}} {{result}}"),
            ),
            _series(
                "Top-ups",
                "short",
                ("sum by (channel) (rate(creditd_top_ups_total[$__rate_interval]))", "{{channel}} /s"),
                ("sum by (channel) (rate(creditd_top_up_amount_minor_total[$__rate_interval]))", "{{channel}} minor/s"),
            ),
        ],
    ),
    (
        "Latency",
        [
            _series(
                "Charge latency",
                "s",
                *[
                    (
                        f"histogram_quantile({quantile}, sum by (le) "
                        '(rate(creditd_request_duration_seconds_bucket{method="Charge"}[$__rate_interval])))',
                        f"p{int(quantile * 100)}",
                    )
                    for quantile in (0.5, 0.9, 0.99)
                ],
            ),
            _series(
                "p99 latency by method",
                "s",
                (
                    "histogram_quantile(0.99, sum by (le, method) "
                    "(rate(creditd_request_duration_seconds_bucket[$__rate_interval])))",
                    "{{method}}",
                ),
            ),
            _series(
                "Garbage collector pauses (p99)",
                "s",
                (
                    "histogram_quantile(0.99, sum by (le, generation) "
                    "(rate(creditd_collector_pause_seconds_bucket[$__rate_interval])))",
                    "generation {{generation}}",
                ),
            ),
        ],
    ),
    (
        "Redis",
        [
            _series(
                "Redis pipeline round trip",
                "s",
                (
                    "histogram_quantile(0.5, sum by (le) "
                    "(rate(creditd_redis_pipeline_duration_seconds_bucket[$__rate_interval])))",
                    "p50",
                ),
                (
                    "histogram_quantile(0.99, sum by (le) "
                    "(rate(creditd_redis_pipeline_duration_seconds_bucket[$__rate_interval])))",
                    "p99",
                ),
            ),
            _series(
                "Redis up and circuit",
                "short",
                ("min(creditd_redis_up)", "up (min over processes)"),
                ("max(creditd_redis_circuit_open)", "circuit open (max)"),
                ("max(abs(creditd_clock_skew_seconds))", "clock skew s (max)"),
            ),
            _series(
                "Redis errors, time-outs and refusals",
                "ops",
                ("sum by (kind) (rate(creditd_redis_errors_total[$__rate_interval]))", "error {{kind}}"),
                ("sum by (source) (rate(creditd_redis_timeouts_total[$__rate_interval]))", "time-out {{source}}"),
                ("sum(rate(creditd_redis_refused_total[$__rate_interval]))", "refused (circuit open)"),
            ),
        ],
    ),
    (
        "Sessions and sweeper",
        [
            _series(
                "Open sessions and reserved money",
                "short",
                ("max(creditd_open_sessions)", "open sessions"),
                ("max(creditd_reserved_minor)", "reserved (minor units)"),
            ),
            _series(
                "Sweeper passes",
                "ops",
                ("sum by (result) (rate(creditd_sweeper_passes_total[$__rate_interval]))", "{{result}}"),
                ("sum(creditd_sweeper_partitions_held)", "partitions held"),
            ),
            _series(
                "Orphan sessions swept",
                "short",
                ("sum(increase(creditd_sweeper_sessions_released_total[$__rate_interval]))", "released"),
                ("sum(increase(creditd_sweeper_charged_minor_total[$__rate_interval]))", "charged (minor units)"),
            ),
        ],
    ),
    (
        "Notifier and usage export",
        [
            _series(
                "Notices by result",
                "ops",
                ("sum by (result) (rate(creditd_notices_total[$__rate_interval]))", "{{result}}"),
                description="failed: an outage, retried; dead: given up after every retry.",
            ),
            _series(
                "Notice lag (event to channel)",
                "s",
                (
                    "histogram_quantile(0.95, sum by (le, channel) "
                    "(rate(creditd_notice_lag_seconds_bucket[$__rate_interval])))",
                    "p95 {{channel}}",
                ),
            ),
            _series(
                "Usage export and audit",
                "short",
                ("max(creditd_usage_unexported_age_seconds)", "oldest unexported record, s"),
                ("max(creditd_audit_violations)", "audit violations"),
            ),
        ],
    ),
]


def dashboard() -> Dashboard:
    panels: list[RowPanel | TimeSeries] = []
    y = 0
    for title, row_panels in SECTIONS:
        panels.append(RowPanel(title=title, gridPos=GridPos(h=1, w=24, x=0, y=y)))
        y += 1
        for index, panel in enumerate(row_panels):
            panel.gridPos = GridPos(h=PANEL_HEIGHT, w=PANEL_WIDTH, x=index * PANEL_WIDTH, y=y)
            panels.append(panel)
        y += PANEL_HEIGHT
    datasource = Variable(name="datasource", label="Prometheus", query="prometheus", type="datasource", default="")
    return Dashboard(
        title="creditd",
        uid="creditd-overview",
        description="Charging, latency, Redis, sweeper, notifier and usage export of creditd (monitoring/dashboard.py)",
        tags=["creditd"],
        timezone="utc",
        panels=panels,
        templating=Templating(list=[datasource]),
    ).auto_panel_ids()


def dashboard_json() -> str:
    stream = io.StringIO()
    json.dump(dashboard().to_json_data(), stream, sort_keys=True, indent=2, cls=DashboardEncoder)
    return stream.getvalue() + "\n"


def expressions() -> list[str]:
    """Every PromQL expression of the dashboard's panels."""
    return [target.expr for _, row_panels in SECTIONS for panel in row_panels for target in panel.targets]


if __name__ == "__main__":
    JSON_PATH.parent.mkdir(exist_ok=True)
    JSON_PATH.write_text(dashboard_json())
    print(f"wrote {JSON_PATH} ({len(expressions())} queries)", file=sys.stderr)
