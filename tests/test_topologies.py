"""The lifecycle, concurrency, idempotency, events, sweeper, usage, shared-wallet and batch-CLI tests
(export, rerate, reports), unchanged, against a 3-primary Redis Cluster and against a Sentinel-managed
primary with a replica and three sentinels.

Each run is a child pytest over those modules with CREDITD_TEST_TOPOLOGY set, so conftest starts
that topology from the embedded binary instead of the single server; the child's own fixtures stop
it. The single-server run of the same modules is the main suite itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TOPOLOGY_VARIABLE

# The modules whose work spans partitions, primaries or processes (sessions and their deadlines,
# retransmissions, the event feed, the sweeper's leases and due index, jobs over every account,
# exports and reports, shared wallets): what a topology can break. The rating rules, bonus money,
# buckets and bundles are one account's arithmetic in one function call, the same on any topology,
# and run in the main suite only.
MODULES = (
    "test_charge_lifecycle.py",
    "test_concurrency.py",
    "test_idempotency.py",
    "test_ladder.py",
    "test_bucket_lifecycle.py",
    "test_events.py",
    "test_event_positions.py",
    "test_sweeper.py",
    "test_audit_cli.py",
    "test_credit_tiers.py",
    "test_plan_changes.py",
    "test_usage.py",
    "test_usage_export.py",
    "test_rerate.py",
    "test_groups.py",
)
RUN_TIMEOUT_S = 600
REPORT_CHARS = 6000


def failures(stdout: str) -> str:
    """The start of each failure of the child run (a long assertion diff would push an earlier one
    out of a plain tail), then its short summary."""
    report, _, summary = stdout.partition("short test summary info")
    sections = report.split("\n___")[1:] or [report[-REPORT_CHARS:]]
    shown = "\n___".join(section[: REPORT_CHARS // len(sections)] for section in sections)
    return f"{shown}\n{summary[-1500:]}"


@pytest.mark.parametrize("topology", ["cluster", "sentinel"])
def test_the_suite_passes_unchanged_on(topology: str, tmp_path: Path) -> None:
    tests = Path(__file__).parent
    environment = dict(os.environ, **{TOPOLOGY_VARIABLE: topology})
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-rf",
        "-p",
        "no:cacheprovider",
        "--basetemp",
        str(tmp_path / "run"),
        *(str(tests / module) for module in MODULES),
    ]
    run = subprocess.run(
        command, env=environment, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=tests.parent
    )
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    assert run.returncode == 0, f"{topology}: {summary}\n{failures(run.stdout)}\n{run.stderr[-2000:]}"
    assert " passed" in summary and "skipped" not in summary, summary
