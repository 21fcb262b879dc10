"""Test audio made with numpy (WAV via the standard library) and read back with the bundled ffmpeg."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.video.encoder import ffmpeg_exe

RATE = 44100


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE) -> Path:
    """Mono 16-bit WAV of ``samples`` in [-1, 1]."""
    data = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(data.tobytes())
    return path


def tone(seconds: float, frequency: float = 440.0, level: float = 0.5, rate: int = RATE) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return level * np.sin(2 * np.pi * frequency * t)


def click_track(seconds: float, clicks: np.ndarray, rate: int = RATE) -> np.ndarray:
    """Silence with a short 1 kHz click (10 ms, fast decay) starting at each time in ``clicks``."""
    samples = np.zeros(round(seconds * rate))
    length = round(0.01 * rate)
    burst = np.sin(2 * np.pi * 1000 * np.arange(length) / rate) * np.exp(-np.arange(length) / (0.002 * rate))
    for click in clicks:
        start = round(click * rate)
        piece = samples[start:start + length]
        piece += burst[:len(piece)]
    return samples


@dataclass(frozen=True)
class AudioStream:
    codec: str
    duration: float
    sample_rate: int


def probe_audio_stream(path: Path) -> AudioStream | None:
    """The first audio stream's codec, duration and rate (system ffprobe, else the bundled ffmpeg's log)."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe:
        out = subprocess.run([ffprobe, "-v", "error", "-select_streams", "a:0", "-show_entries",
                              "stream=codec_name,duration,sample_rate", "-of", "json", str(path)],
                             capture_output=True, text=True, check=True).stdout
        streams = json.loads(out)["streams"]
        if not streams:
            return None
        stream = streams[0]
        return AudioStream(stream["codec_name"], float(stream["duration"]), int(stream["sample_rate"]))
    log = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path), "-map", "0:a:0", "-f", "null", "-"],
                         capture_output=True, text=True).stderr
    match = re.search(r"Audio: (\w+).*?(\d+) Hz", log)
    if match is None:
        return None
    h, m, s = re.findall(r"time=(\d+):(\d+):([\d.]+)", log)[-1]
    return AudioStream(match.group(1), int(h) * 3600 + int(m) * 60 + float(s), int(match.group(2)))


def decode_audio(path: Path, rate: int = 48000) -> np.ndarray:
    """Every audio sample of ``path`` as mono float32 at ``rate`` (first channel)."""
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1", "-ar", str(rate),
                          "-f", "f32le", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, "<f4")


def longest_silence(samples: np.ndarray, threshold: float = 1e-4) -> int:
    """The longest run of samples whose magnitude stays under ``threshold``."""
    quiet = np.abs(samples) < threshold
    if not quiet.any():
        return 0
    edges = np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return int((ends - starts).max())
