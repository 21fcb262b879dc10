"""Helpers that look at a video the way a user's tools would (ffprobe from imageio-ffmpeg's ffmpeg)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.video.encoder import ffmpeg_exe


@dataclass(frozen=True)
class VideoInfo:
    codec: str
    pix_fmt: str
    width: int
    height: int
    fps: float
    frames: int
    duration: float


def probe(path: Path) -> VideoInfo:
    """Codec, pixel format, size, frame rate, decoded frame count and duration of an MP4."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe:
        out = subprocess.run(
            [ffprobe, "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
             "stream=codec_name,pix_fmt,width,height,r_frame_rate,nb_read_frames:format=duration",
             "-of", "json", str(path)], capture_output=True, text=True, check=True).stdout
        data = json.loads(out)
        stream = data["streams"][0]
        num, den = stream["r_frame_rate"].split("/")
        return VideoInfo(stream["codec_name"], stream["pix_fmt"], stream["width"], stream["height"],
                         int(num) / int(den), int(stream["nb_read_frames"]), float(data["format"]["duration"]))
    # No system ffprobe: read the same facts from the bundled ffmpeg's own log.
    log = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path), "-map", "0:v:0", "-f", "null", "-"],
                         capture_output=True, text=True).stderr
    match = re.search(r"Video: (\w+).*?, (\w+)\(.*?(\d{2,5})x(\d{2,5}).*?, ([\d.]+) fps", log)
    frames = int(re.findall(r"frame=\s*(\d+)", log)[-1])
    h, m, s = re.search(r"Duration: (\d+):(\d+):([\d.]+)", log).groups()
    return VideoInfo(match.group(1), match.group(2), int(match.group(3)), int(match.group(4)),
                     float(match.group(5)), frames, int(h) * 3600 + int(m) * 60 + float(s))


def moov_before_mdat(path: Path) -> bool:
    """True when the MP4's index comes first (+faststart): the browser can play before the download ends."""
    data = Path(path).read_bytes()[:4_000_000]
    moov, mdat = data.find(b"moov"), data.find(b"mdat")
    return moov != -1 and (mdat == -1 or moov < mdat)


def read_frames(path: Path, width: int, height: int) -> list[np.ndarray]:
    """Decode every frame of a small video into RGB arrays."""
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    frame_bytes = width * height * 3
    return [np.frombuffer(raw[i:i + frame_bytes], np.uint8).reshape(height, width, 3)
            for i in range(0, len(raw), frame_bytes)]
