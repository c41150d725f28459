"""The streaming multipart receiver: the same body gives the same upload however the
network cuts it, an unfinished body is never an upload, and a header name split
between two reads of a real server keeps its first half."""

from __future__ import annotations

import itertools
import string
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostile.support import Part, multipart_body, request_head, send_raw
from instance import LiveInstance
from reelwatch.api.errors import ApiError
from reelwatch.api.upload import MultipartReceiver, ParsedUpload
from reelwatch.storage import LocalStore
from reelwatch.storage.local import IncomingFile

BOUNDARY_CHARS = string.ascii_letters + string.digits + "'()+_,-./:=?"
FIELD_NAMES = ["title", "description", "file_name", "x"]


@st.composite
def uploads(draw: st.DrawFn) -> tuple[bytes, bytes, bytes, dict[str, str]]:
    """(boundary, body, file payload, the fields the receiver keeps)."""
    boundary = draw(st.text(BOUNDARY_CHARS, min_size=1, max_size=70)).encode()
    # Payloads rich in near-boundaries: what the parser's look-behind must not eat.
    pieces = [b"\r", b"\n", b"-", b"\r\n--", b"\r\n--" + boundary[:-1], b"\x00", b"\xff"]
    payload = b"".join(
        draw(st.lists(st.sampled_from(pieces) | st.binary(max_size=40), max_size=30))
    )
    fields = draw(
        st.lists(
            st.tuples(
                st.sampled_from(FIELD_NAMES), st.text(st.characters(min_codepoint=1, codec="utf-8"))
            ),
            max_size=5,
        )
    )
    file_at = draw(st.integers(0, len(fields)))
    parts = [Part(name, value.encode()) for name, value in fields]
    parts.insert(file_at, Part("file", payload, filename="clip.mp4"))
    kept = {name: value for name, value in fields if name == "title"}  # the last one wins
    return boundary, multipart_body(boundary, parts), payload, kept


def cut(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(body), *(point % (len(body) + 1) for point in cuts)})
    return [body[start:end] for start, end in itertools.pairwise(points)]


def receive(store: LocalStore, boundary: bytes, chunks: list[bytes]) -> ParsedUpload:
    receiver = MultipartReceiver(boundary, store, limit_bytes=1 << 20)
    for chunk in chunks:
        receiver.feed(chunk)
    return receiver.finish()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(upload=uploads(), cuts=st.lists(st.integers(0, 10_000), max_size=40))
def test_any_chunking_of_a_body_gives_the_same_file_and_fields(
    upload: tuple[bytes, bytes, bytes, dict[str, str]], cuts: list[int]
) -> None:
    boundary, body, payload, kept = upload
    with tempfile.TemporaryDirectory() as root:
        store = LocalStore(Path(root))
        store.ensure_layout()
        result = receive(store, boundary, cut(body, cuts))
        assert result.incoming is not None
        result.incoming.finish()
        assert isinstance(result.incoming, IncomingFile)
        assert result.incoming.path.read_bytes() == payload
        assert result.fields == kept
        assert result.filename == "clip.mp4"


@settings(max_examples=100, deadline=None)
@given(upload=uploads(), data=st.data())
def test_a_body_cut_short_is_refused_and_leaves_no_file(
    upload: tuple[bytes, bytes, bytes, dict[str, str]], data: st.DataObject
) -> None:
    boundary, body, _, _ = upload
    # Anything short of the closing boundary's last hyphen is an unfinished body.
    end = data.draw(st.integers(0, len(body) - len(b"-\r\n")))
    cuts = data.draw(st.lists(st.integers(0, 10_000), max_size=10))
    with tempfile.TemporaryDirectory() as root:
        store = LocalStore(Path(root))
        store.ensure_layout()
        try:
            receive(store, boundary, cut(body[:end], cuts))
        except ApiError as refusal:
            assert (refusal.status, refusal.code) == (400, "bad_request")
        else:
            raise AssertionError("an unfinished body was taken as an upload")
        assert list(store.incoming.iterdir()) == []


def test_a_header_name_split_between_two_reads_keeps_its_first_half(
    hostile: LiveInstance,
) -> None:
    boundary = b"splitboundary"
    body = multipart_body(
        boundary,
        [Part("title", "Köln at night".encode()), Part("file", b"\x00video", filename="a.mp4")],
    )
    # Cut inside "Content-Disposition" of both parts, and inside the title's value.
    first = body.index(b"Disposition")
    second = body.index(b"Disposition", first + 1)
    title = body.index("Köln".encode()) + 2
    points = [0, first, title, second, len(body)]
    chunks = [body[start:end] for start, end in itertools.pairwise(points)]
    headers = {
        "Authorization": f"Bearer {hostile.token('split@example.com')}",
        "Content-Type": f"multipart/form-data; boundary={boundary.decode()}",
    }
    head = request_head("POST", "/api/v1/videos", headers, content_length=len(body))
    answer = send_raw(hostile.settings.host_port[1], head, chunks, pause_s=0.05)
    assert answer is not None, "the server closed the connection without answering"
    assert answer.status == 201, answer.body
    with hostile.client("split@example.com") as client:
        video = client.get(answer.headers["location"]).json()
    assert (video["title"], video["filename"], video["size_bytes"]) == (
        "Köln at night",
        "a.mp4",
        len(b"\x00video"),
    )
