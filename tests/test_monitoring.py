"""The monitoring kit (monitoring/) holds: promtool accepts the alert rules and their unit tests pass;
every alert has a unit test that fires it and a runbook section in docs/operations.md that its
annotation points to; the committed Grafana JSON is what monitoring/dashboard.py generates; and every
metric an alert or a panel names is exported by a live `creditd serve` (its /metrics scraped), a live
`creditd notify` (a subprocess, its /metrics scraped) or `creditd audit --metrics-file` (run against the
same Redis): a renamed metric fails here instead of silently blanking a panel or an alert."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import msgspec
import pytest
import yaml

from creditd.config.settings import Settings
from creditd.devtools.ports import free_port
from monitoring import dashboard
from tests.harness import started_server

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "monitoring"
RULES = MONITORING / "alerts.yml"
RULE_TESTS = MONITORING / "alerts_test.yml"
RUNBOOKS = ROOT / "docs" / "operations.md"
METRIC_NAME = re.compile(r"\bcreditd_[a-z0-9_]+")
needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="PROMTOOL MISSING: Debian's prometheus package (installed by .ci/run) brings it; rules not checked",
)


def alerts() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


@needs_promtool
def test_promtool_checks_the_rules_and_runs_their_unit_tests() -> None:
    checked = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(yaml.safe_load(RULES.read_text())['groups'][0]['rules'])} rules found" in checked.stdout
    tested = subprocess.run(
        ["promtool", "test", "rules", RULE_TESTS.name], cwd=MONITORING, capture_output=True, text=True, timeout=120
    )
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_every_alert_fires_in_a_unit_test_and_has_a_runbook() -> None:
    fired = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    quiet = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
        if not case.get("exp_alerts")
    }
    headings = set(re.findall(r"^### (\w+)$", RUNBOOKS.read_text(), re.MULTILINE))
    names = [str(rule["alert"]) for rule in alerts()]
    assert len(names) >= 10 and len(set(names)) == len(names)
    for name in names:
        assert name in fired, f"{name}: no unit test fires it"
        assert name in quiet, f"{name}: no unit test shows it quiet"
        assert name in headings, f"{name}: no '### {name}' runbook in docs/operations.md"
    for rule in alerts():
        annotations = rule["annotations"]
        assert isinstance(annotations, dict)
        assert annotations["runbook"] == f"docs/operations.md#{str(rule['alert']).lower()}"
    assert headings == set(names), "a runbook without its alert"


def test_the_committed_dashboard_is_the_generated_one() -> None:
    committed = dashboard.JSON_PATH.read_text()
    assert committed == dashboard.dashboard_json(), "run `python3 -m monitoring.dashboard` and commit the JSON"
    titles = [panel["title"] for panel in msgspec.json.decode(committed)["panels"]]
    for title in ("Charge answers by result", "Charge latency", "Redis up and circuit", "Sweeper passes"):
        assert title in titles
    assert "Notice lag (event to channel)" in titles and "Notices by result" in titles


def exported_names(exposition: str) -> set[str]:
    """The sample names an exposition can have: each family's, with a histogram's series."""
    names: set[str] = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", exposition, re.MULTILINE):
        names.add(name)
        if kind == "histogram":
            names.update(f"{name}{suffix}" for suffix in ("_bucket", "_count", "_sum"))
    return names


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        return str(answer.read().decode())


def scrape_notifier(redis_url: str, tmp_path: Path) -> str:
    port = free_port()
    log = (tmp_path / "notify.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "creditd", "notify", "--redis", redis_url, "--metrics-listen", f"127.0.0.1:{port}"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                return scrape(port)
            except (urllib.error.URLError, ConnectionError):
                assert process.poll() is None, (tmp_path / "notify.log").read_text()
                assert time.monotonic() < deadline, "the notifier's /metrics did not come up in 30 s"
                time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.mark.asyncio
async def test_every_metric_named_by_an_alert_or_a_panel_is_exported(
    redis_server, redis_client, settings: Settings, tmp_path: Path
) -> None:
    with_metrics = msgspec.structs.replace(
        settings, metrics=msgspec.structs.replace(settings.metrics, listen="127.0.0.1:0")
    )
    async with started_server(with_metrics, redis_server.url, redis_client) as creditd:
        assert creditd.server.metrics is not None
        served = await asyncio.to_thread(scrape, creditd.server.metrics.port)
    notifier = await asyncio.to_thread(scrape_notifier, redis_server.url, tmp_path)
    audit_file = tmp_path / "creditd_audit.prom"
    audited = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "creditd", "audit", "--redis", redis_server.url, "--metrics-file", str(audit_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert audited.returncode == 0, audited.stdout + audited.stderr
    assert "creditd_audit_violations 0.0" in audit_file.read_text()
    exported = exported_names(served) | exported_names(notifier) | exported_names(audit_file.read_text())
    assert "creditd_notices_total" in exported_names(notifier) and "creditd_redis_up" in exported_names(served)

    named: dict[str, str] = {}
    for rule in alerts():
        for metric in METRIC_NAME.findall(str(rule["expr"])):
            named[metric] = f"alert {rule['alert']}"
    for expression in dashboard.expressions():
        for metric in METRIC_NAME.findall(expression):
            named[metric] = f"dashboard query {expression!r}"
    assert len(named) >= 20
    missing = {metric: where for metric, where in named.items() if metric not in exported}
    assert not missing, f"named but not exported: {missing}"
