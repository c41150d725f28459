"""A worker SIGKILLed while it publishes a rendition to the bucket: no half object is
ever visible, the retry finishes the video, and gc aborts the upload it left."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from instance import LiveInstance, free_port, wait_for_outcome, wait_until
from reelwatch.config import load_settings
from reelwatch.database import Database, utcnow
from reelwatch.operations.gc import collect, find_garbage
from reelwatch.storage import open_store
from s3server import HoldingProxy, MotoServer, keys, unfinished_uploads, worker_env

MIB = 1 << 20


def start_worker(home: Path, endpoint: str, bucket: str, log: Path) -> subprocess.Popen[bytes]:
    env = worker_env(
        home,
        endpoint,
        f"s3://{bucket}/site",
        REELWATCH_SIMULATE="1",
        REELWATCH_SIMULATE_SPEED="0",
        REELWATCH_S3_PART_MB="5",
        REELWATCH_LEASE_SECONDS="2",
        REELWATCH_RETRY_BACKOFF_SCALE="0",
    )
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "reelwatch", "worker"], env=env, stdout=out, stderr=out
        )


def test_a_worker_killed_mid_publish_leaves_no_half_object_and_the_retry_finishes(
    s3: MotoServer, bucket: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    settings = load_settings(
        home=home,
        bind=f"127.0.0.1:{free_port()}",
        storage_url=f"s3://{bucket}/site",
        simulate=True,
        simulate_speed=0,
        lease_seconds=2,
        retry_backoff_scale=0,
        s3_part_mb=5,
    )
    instance = LiveInstance(settings, workers=0).start()
    proxy = HoldingProxy(s3.port, marker=b"partNumber=")
    original = os.urandom(12 * MIB)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        client = instance.client()
        answer = client.post("/api/v1/videos", files={"file": ("big.mp4", original)})
        assert answer.status_code == 201, answer.text
        video_id = answer.json()["id"]
        prefix = f"site/videos/{video_id}/"

        workers.append(start_worker(home, proxy.url, bucket, tmp_path / "worker1.log"))
        wait_until(proxy.held.is_set, timeout=60)  # a part of a rendition is on its way
        [pending] = unfinished_uploads(s3.client(), bucket)
        assert pending.startswith(prefix) and pending.endswith("p.mp4")
        assert pending not in keys(s3.client(), bucket, prefix), "nothing half visible"
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(timeout=20)
        assert pending not in keys(s3.client(), bucket, prefix)

        workers.append(start_worker(home, s3.url, bucket, tmp_path / "worker2.log"))
        final = wait_for_outcome(client, video_id, timeout=120)
        assert final["status"] == "ready", final["error"]
        stored = keys(s3.client(), bucket, prefix)
        digest = hashlib.sha256(original).hexdigest()
        for rendition in final["renditions"]:
            key = f"{prefix}{rendition['name']}.mp4"
            assert stored[key] == len(original)
            body = s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()
            assert hashlib.sha256(body).hexdigest() == digest, "whole, never a torn object"
        assert not [p for p in (home / "scratch").rglob("*") if p.is_file() and p.name != ".lock"]

        db = Database(settings.resolved_database_url)
        try:
            later = utcnow() + timedelta(days=2)
            garbage = find_garbage(
                db, open_store(settings), now=later, retention_days=0, orphan_retention_days=7
            )
            assert [g.path for g in garbage] == [f"s3://{bucket}/{pending}"]
            collect(db, open_store(settings), garbage)
        finally:
            db.dispose()
        assert unfinished_uploads(s3.client(), bucket) == []
        assert keys(s3.client(), bucket, prefix) == stored
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
                worker.wait(timeout=30)
        proxy.close()
        instance.stop()
