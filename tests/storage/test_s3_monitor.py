"""The monitor's storage check and its end-to-end probe with the media in a bucket."""

from __future__ import annotations

import threading
from pathlib import Path

from instance import LiveInstance, free_port
from reelwatch.config import load_settings
from reelwatch.monitor import checks
from reelwatch.monitor.probe import EndToEndProbe
from reelwatch.notify.sink import MailSink
from reelwatch.storage import open_store
from s3server import MotoServer, keys


def test_the_storage_check_writes_reads_and_deletes_a_probe_object(
    s3: MotoServer, bucket: str, tmp_path: Path
) -> None:
    store = open_store(load_settings(home=tmp_path, storage_url=f"s3://{bucket}/site"))
    result = checks.check_storage(store)
    assert result.state == "ok" and result.detail == f"writable (s3://{bucket}/site)"
    assert keys(s3.client(), bucket) == {}, "the probe object is removed"
    gone = open_store(load_settings(home=tmp_path, storage_url="s3://no-such-bucket-x/site"))
    down = checks.check_storage(gone)
    assert down.state == "critical" and "bucket does not exist" in down.detail


def test_the_end_to_end_probe_passes_on_a_bucket(
    s3: MotoServer, bucket: str, tmp_path: Path, sink: MailSink
) -> None:
    settings = load_settings(
        home=tmp_path / "home",
        bind=f"127.0.0.1:{free_port()}",
        storage_url=f"s3://{bucket}/site",
        lease_seconds=3,
        retry_backoff_scale=0.0,
        smtp_url=f"smtp://127.0.0.1:{sink.port}",
        probe_interval_seconds=0,
        probe_timeout_seconds=90,
    )
    instance = LiveInstance(settings, workers=1, dispatchers=1).start()
    try:
        passed = EndToEndProbe(instance.db, settings).run(threading.Event())
        assert passed.state == "ok", passed.detail
        assert "rendition of" in passed.detail and "e-mail accepted" in passed.detail
        assert keys(s3.client(), bucket, "site/videos/") == {}, "the probe deletes its video"
    finally:
        instance.stop()
