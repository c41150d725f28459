"""Prometheus's own tool accepts reelwatch's /metrics and the shipped alerting rules."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import httpx

from instance import LiveInstance, free_port, upload, wait_for_outcome
from reelwatch.config import load_settings
from reelwatch.database import utcnow
from reelwatch.insights.checks import CheckResult, record_check
from reelwatch.monitor.probe import CHECK_NAME as PROBE_CHECK
from reelwatch.monitor.service import Monitor

DEPLOY = Path(__file__).parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "reelwatch.json"
METRIC = re.compile(r"\breelwatch_[a-z0-9_]+")


def test_promtool_accepts_metrics_and_rules(tmp_path: Path, good_samples: dict[str, Path]) -> None:
    settings = load_settings(
        home=tmp_path / "home", bind=f"127.0.0.1:{free_port()}", probe_interval_seconds=0
    )
    instance = LiveInstance(settings, workers=1).start()
    try:
        video = upload(instance.client(), good_samples["h264"])
        assert wait_for_outcome(instance.client(), video["id"])["status"] == "ready"
        Monitor(instance.db, settings).run_round()  # checks and alert states to export
        with instance.db.write() as session:  # as a probe run leaves it (tests/monitor)
            record_check(session, PROBE_CHECK, CheckResult("ok", "passed", 4.2), utcnow())
        text = httpx.get(f"{instance.url}/metrics").text
    finally:
        instance.stop()
    # Two transcode tasks: first (480p here) and ladder (nothing: 720p would be an upscale).
    assert 'reelwatch_task_duration_seconds_bucket{kind="transcode",le="+Inf"} 2.0' in text
    assert 'reelwatch_check_severity{check="database"} 0.0' in text
    assert 'reelwatch_videos{status="ready"} 1.0' in text
    assert "reelwatch_e2e_probe_seconds 4.2" in text
    assert "reelwatch_expected_wait_seconds 0.0" in text and "reelwatch_workers_needed 0.0" in text
    metrics = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert metrics.returncode == 0, metrics.stdout + metrics.stderr
    rules = subprocess.run(
        ["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 6 rules found" in rules.stdout
    check_dashboard(text, tmp_path)


def check_dashboard(metrics_text: str, tmp_path: Path) -> None:
    """Every panel's query parses (promtool checks it as a recording rule) and names
    only metrics that /metrics exports."""
    exprs = [
        target["expr"]
        for panel in json.loads(DASHBOARD.read_text())["panels"]
        for target in panel["targets"]
    ]
    exported = set(METRIC.findall(metrics_text))
    for expr in exprs:
        assert set(METRIC.findall(expr)) <= exported, expr
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:q{i}", "expr": e} for i, e in enumerate(exprs)],
            }
        ]
    }
    as_rules = tmp_path / "dashboard-rules.json"  # YAML is a superset of JSON
    as_rules.write_text(json.dumps(rules))
    check = subprocess.run(
        ["promtool", "check", "rules", str(as_rules)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
