"""Prometheus's own tool accepts reelwatch's /metrics and the shipped alerting rules."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from instance import LiveInstance, free_port
from reelwatch.config import load_settings

RULES = Path(__file__).parents[2] / "deploy" / "prometheus" / "alerts.yml"


def test_promtool_accepts_metrics_and_rules(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home", bind=f"127.0.0.1:{free_port()}")
    instance = LiveInstance(settings, workers=1).start()
    try:
        text = httpx.get(f"{instance.url}/metrics").text
    finally:
        instance.stop()
    metrics = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert metrics.returncode == 0, metrics.stdout + metrics.stderr
    rules = subprocess.run(
        ["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 4 rules found" in rules.stdout
