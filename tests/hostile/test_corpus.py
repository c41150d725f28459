"""Every hostile input of the corpus against a real server on SQLite and PostgreSQL: a
prompt 4xx with the documented code (never a 5xx, never a hang), nothing kept where
refused, and the server's memory bounded."""

from __future__ import annotations

import json
from collections.abc import Iterable

import psutil
import pytest
from sqlalchemy import func, select

from hostile.corpus import CORPUS, Case
from hostile.support import RawAnswer, chunked, request_head, send_raw
from instance import LiveInstance, wait_until
from reelwatch.db.models import Video

ANSWER_DEADLINE_S = 10.0
SLICE = 64 * 1024


def body_chunks(case: Case) -> Iterable[bytes]:
    if callable(case.body):
        return case.body()
    return [case.body[start : start + SLICE] for start in range(0, len(case.body), SLICE)]


def send(instance: LiveInstance, case: Case) -> RawAnswer | None:
    headers = dict(case.headers)
    if case.auth:
        email = f"corpus-{case.auth}@example.com"
        headers["Authorization"] = f"Bearer {instance.token(email, admin=case.auth == 'admin')}"
    if case.content_length is None:
        headers["Transfer-Encoding"] = "chunked"
        length = None
    elif case.content_length == -1:
        length = len(case.body) if isinstance(case.body, bytes) else None
    else:
        length = case.content_length
    head = request_head(case.method, case.path, headers, content_length=length)
    port = instance.settings.host_port[1]
    chunks = body_chunks(case) if length is not None else chunked(body_chunks(case))
    return send_raw(port, head, chunks, timeout_s=ANSWER_DEADLINE_S, half_close=case.half_close)


def video_count(instance: LiveInstance) -> int:
    with instance.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(Video)) or 0)


def stored(instance: LiveInstance) -> tuple[int, int]:
    """(originals in the store, partial uploads in its incoming/ folder)."""
    media = instance.settings.media_root
    return len(list((media / "videos").glob("*/original"))), len(
        list((media / "incoming").glob("*.part"))
    )


def newest_filename(instance: LiveInstance) -> str:
    with instance.db.read() as session:
        return str(session.scalar(select(Video.filename).order_by(Video.created_at.desc())))


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_a_hostile_input_gets_its_4xx_and_keeps_nothing(hostile: LiveInstance, case: Case) -> None:
    rows, (originals, _) = video_count(hostile), stored(hostile)
    process = psutil.Process()
    rss_before = process.memory_info().rss

    answer = send(hostile, case)

    rss_growth_mb = (process.memory_info().rss - rss_before) / 2**20
    if case.status is None:  # the client gave up: no answer, or a 4xx, is right
        assert answer is None or 400 <= answer.status < 500, answer.body[:500]
    else:
        assert answer is not None, "the server closed the connection without answering"
        assert answer.status == case.status, answer.body[:500]
    if case.code is not None:
        assert answer is not None
        assert json.loads(answer.body)["error"]["code"] == case.code, answer.body[:500]
    assert video_count(hostile) == rows + case.created
    # The partial upload of a refused request is gone by the time it is refused, or
    # (a client that vanished) once the server notices.
    wait_until(lambda: stored(hostile) == (originals + case.created, 0), timeout=5)
    if case.filename is not None:
        assert newest_filename(hostile) == case.filename
    if case.memory_mb is not None:
        assert rss_growth_mb < case.memory_mb, f"RSS grew by {rss_growth_mb:.0f} MB"
