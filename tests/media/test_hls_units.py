"""The HLS helpers on their own: served names, whole folders, the master playlist."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelwatch.media import hls
from reelwatch.media.hls import Variant, folder_written_atomically, master_playlist

SERVED = ["master.m3u8", "360p/index.m3u8", "360p/init.mp4", "1080p/seg-00001.m4s"]
REFUSED = [
    "",
    "/master.m3u8",
    "../original",
    "360p/../original",
    "360p/variant.json",
    "360p/seg-1.m4s",
    "360p/seg-00001.m4s/",
    "360P/index.m3u8",
    "360p/index.m3u8\x00",
    "360p\\index.m3u8",
    "a/360p/index.m3u8",
    ".master.m3u8.0a1b.tmp",
]


@pytest.mark.parametrize("name", SERVED)
def test_names_the_store_writes_are_served(name: str) -> None:
    assert hls.is_served_name(name)


@pytest.mark.parametrize("name", REFUSED)
def test_anything_else_is_not(name: str) -> None:
    assert not hls.is_served_name(name)


def test_a_folder_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    destination = tmp_path / "hls" / "360p"
    with folder_written_atomically(destination) as temporary:
        (temporary / "index.m3u8").write_text("first")
    assert (destination / "index.m3u8").read_text() == "first"
    with pytest.raises(RuntimeError), folder_written_atomically(destination) as temporary:
        (temporary / "index.m3u8").write_text("half")
        raise RuntimeError("ffmpeg died")
    assert (destination / "index.m3u8").read_text() == "first"  # the old one stays
    with folder_written_atomically(destination) as temporary:
        (temporary / "index.m3u8").write_text("second")
    assert (destination / "index.m3u8").read_text() == "second"
    assert sorted(p.name for p in destination.parent.iterdir()) == ["360p"]  # no debris


def test_the_master_lists_each_variant_lowest_first_with_its_attributes() -> None:
    low = Variant("240p", 426, 240, 25.0, 300_000, 250_000, "avc1.42c015,mp4a.40.2", 1)
    high = Variant("480p", 854, 480, 29.97, 900_000, 700_000, "avc1.64001e,mp4a.40.2", 1)
    text = master_playlist([low, high])
    assert text.splitlines() == [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        "#EXT-X-STREAM-INF:BANDWIDTH=300000,AVERAGE-BANDWIDTH=250000,RESOLUTION=426x240,"
        'FRAME-RATE=25.000,CODECS="avc1.42c015,mp4a.40.2"',
        "240p/index.m3u8",
        "#EXT-X-STREAM-INF:BANDWIDTH=900000,AVERAGE-BANDWIDTH=700000,RESOLUTION=854x480,"
        'FRAME-RATE=29.970,CODECS="avc1.64001e,mp4a.40.2"',
        "480p/index.m3u8",
    ]
