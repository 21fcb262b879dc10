"""The segmented H.264 encoder with the real ffmpeg: every frame lands in exactly one segment, in order."""

from __future__ import annotations

import numpy as np
import psutil
import pytest

from media import moov_before_mdat, probe, read_frames
from pipeline.video.encoder import EncodeSettings, SegmentedEncoder

WIDTH, HEIGHT, FPS = 64, 48, 10


def numbered_frame(number: int) -> np.ndarray:
    """A flat frame whose grey level encodes its number (steps of 8 survive H.264 at CRF 18)."""
    return np.full((HEIGHT, WIDTH, 3), 8 + 8 * (number % 30), np.uint8)


def frame_numbers(frames: list[np.ndarray]) -> list[int]:
    return [round((float(frame.mean()) - 8) / 8) for frame in frames]


def encode(tmp_path, count: int, segment_seconds: float = 1.0):
    encoder = SegmentedEncoder(EncodeSettings(WIDTH, HEIGHT, FPS, crf=18, x264_preset="veryfast"), tmp_path,
                               segment_seconds)
    streamed = []
    for number in range(count):
        streamed += encoder.write(numbered_frame(number))
        for segment in streamed:
            assert segment.path.exists()  # handed back only once ffmpeg has finished it
    streamed += encoder.finish(tmp_path / "out.mp4")
    return encoder, streamed


@pytest.mark.parametrize("count", [25, 30, 7])
def test_every_frame_is_in_exactly_one_segment_and_in_the_download(tmp_path, count):
    encoder, streamed = encode(tmp_path, count)
    assert streamed == encoder.segments
    assert [s.index for s in streamed] == list(range(len(streamed)))
    assert [s.first_frame for s in streamed] == list(range(0, count, 10))
    decoded: list[int] = []
    for segment in streamed:
        frames = read_frames(segment.path, WIDTH, HEIGHT)
        assert len(frames) == segment.frames
        decoded += frame_numbers(frames)
    assert decoded == list(range(count))  # nothing lost, doubled or reordered at a boundary
    download = tmp_path / "out.mp4"
    assert frame_numbers(read_frames(download, WIDTH, HEIGHT)) == list(range(count))
    info = probe(download)
    assert (info.codec, info.pix_fmt, info.width, info.height, info.frames) == ("h264", "yuv420p", 64, 48, count)
    assert abs(info.duration - count / FPS) <= 1 / FPS and moov_before_mdat(download)


def test_segments_arrive_while_frames_are_still_being_written(tmp_path):
    encoder = SegmentedEncoder(EncodeSettings(WIDTH, HEIGHT, FPS, x264_preset="veryfast"), tmp_path, 1.0)
    arrived_at: list[int] = []
    for number in range(200):
        arrived_at += [number] * len(encoder.write(numbered_frame(number)))
    encoder.finish(tmp_path / "out.mp4")
    # The first segment is streamable long before the last frame (x264's lookahead delays it a little).
    assert arrived_at and arrived_at[0] < 100


def test_abort_kills_ffmpeg_and_removes_its_files(tmp_path):
    encoder = SegmentedEncoder(EncodeSettings(WIDTH, HEIGHT, FPS, x264_preset="veryfast"), tmp_path, 1.0)
    for number in range(45):
        encoder.write(numbered_frame(number))
    children = psutil.Process().children(recursive=True)
    assert any("ffmpeg" in child.name() for child in children)
    encoder.abort()
    assert not [c for c in psutil.Process().children(recursive=True) if c.is_running() and c.status() != "zombie"]
    assert list(tmp_path.iterdir()) == []


def test_a_wrong_frame_size_is_refused(tmp_path):
    encoder = SegmentedEncoder(EncodeSettings(WIDTH, HEIGHT, FPS), tmp_path)
    with pytest.raises(ValueError, match="expected"):
        encoder.write(np.zeros((HEIGHT, WIDTH + 2, 3), np.uint8))
    encoder.abort()
