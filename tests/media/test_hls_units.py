"""The HLS helpers on their own: served names, tee outputs, playlists."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from reelwatch.media import hls
from reelwatch.media.hls import Variant, master_playlist

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


@pytest.mark.parametrize(
    "name", ["co:lon", "pi|pe", "br[ack]et", "eq=ual", "back\\slash", "sp ace"]
)
def test_no_folder_name_becomes_a_tee_option(tmp_path: Path, name: str) -> None:
    """ffmpeg writes the MP4 and the variant where they were asked, whatever the folder
    is called (each tee parser's specials are escaped)."""
    folder = tmp_path / name / "360p"
    folder.mkdir(parents=True)
    tee = hls.tee_slave({"f": "mp4"}, str(folder / "a.mp4")) + "|" + hls.hls_output(folder)
    source = ["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-t", "5"]
    encode = ["-c:v", "libx264", "-preset", "ultrafast", *hls.FORCED_KEYFRAMES]
    command = ["ffmpeg", "-v", "error", *source, *encode, "-map", "0:v", "-f", "tee", tee]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    assert sorted(p.name for p in folder.iterdir()) == [
        "a.mp4",
        hls.FFMPEG_PLAYLIST,
        hls.INIT_SEGMENT,
        "seg-00001.m4s",
        "seg-00002.m4s",
    ]


def test_a_folder_that_would_be_numbered_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="%d"):
        hls.hls_output(tmp_path / "take%03d")


def test_a_growing_playlist_is_an_event_played_from_its_start_then_a_vod() -> None:
    segments = [("seg-00001.m4s", 4.0), ("seg-00002.m4s", 4.0)]
    growing = hls.media_playlist(segments, complete=False).splitlines()
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in growing and "#EXT-X-ENDLIST" not in growing
    assert "#EXT-X-START:TIME-OFFSET=0" in growing
    # Its target may not change as it grows: the longest any segment may be.
    assert f"#EXT-X-TARGETDURATION:{hls.MAX_SEGMENT_S}" in growing
    done = hls.media_playlist([*segments, ("seg-00003.m4s", 1.04)], complete=True).splitlines()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in done and done[-1] == "#EXT-X-ENDLIST"
    assert "#EXT-X-TARGETDURATION:4" in done and "#EXT-X-START:TIME-OFFSET=0" not in done
    assert [line for line in done if line.startswith("seg-")] == [
        "seg-00001.m4s",
        "seg-00002.m4s",
        "seg-00003.m4s",
    ]


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
