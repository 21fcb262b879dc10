"""Beat times of a song, with librosa's beat tracker (Ellis 2007 dynamic programming).

librosa's ``beat_track`` is used as it is. Its onset-strength envelope is computed
here block by block (the same recipe as ``librosa.onset.onset_strength``: mean over
mel bands of the positive change in dB) because the stock function wants the
whole signal in memory, and its STFT at a fine hop would hold hundreds of MB for
a 10-minute song; in blocks memory stays flat. A short window (512 samples at
22.05 kHz) and hop (128) place a beat within a few milliseconds of the attack,
well inside one video frame.

librosa (with numba) is imported on first use only; its first call in a new
environment compiles for a while (numba caches it after that).
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from .decode import pcm_blocks

SAMPLE_RATE = 22050
N_FFT = 512
HOP = 128
N_MELS = 40
_TEMPO_CHUNK = 2048  # coarse frames (~48 s) per tempogram chunk
_FLOOR_DB = -100.0  # power floor: silence reads as -100 dB, not minus infinity


def detect_beats(path: str | Path, start: float, duration: float,
                 check: Callable[[], None] | None = None) -> np.ndarray:
    """Beat times in seconds from ``start`` (sorted, within ``[0, duration]``) of ``path``'s audio.

    ``check`` is called between blocks (the renderer passes one that raises when the render is cancelled).
    """
    envelope = onset_envelope(path, start, duration, check)
    if envelope.size < 4 or not np.any(envelope > 0):
        return np.zeros(0)
    import librosa

    _, beats = librosa.beat.beat_track(onset_envelope=envelope, sr=SAMPLE_RATE, hop_length=HOP,
                                       bpm=estimate_tempo(envelope), units="time")
    beats = np.asarray(beats, dtype=float)
    return beats[(beats >= 0) & (beats <= duration)]


def estimate_tempo(envelope: np.ndarray) -> float:
    """The song's tempo (BPM): librosa's global estimate, from a tempogram averaged over chunks.

    ``librosa.feature.tempo`` on the whole envelope would build one tempogram of
    (window x every frame); at this hop that is gigabytes for a long song. The
    same average, made chunk by chunk at a 4x coarser hop, is handed to it instead.
    """
    import librosa

    coarse = envelope[: len(envelope) // 4 * 4].reshape(-1, 4).mean(axis=1)
    total, frames = None, 0
    for start in range(0, len(coarse), _TEMPO_CHUNK):
        tempogram = librosa.feature.tempogram(onset_envelope=coarse[start:start + _TEMPO_CHUNK], sr=SAMPLE_RATE,
                                              hop_length=4 * HOP)
        total = tempogram.sum(axis=1) if total is None else total + tempogram.sum(axis=1)
        frames += tempogram.shape[1]
    mean = (total / max(frames, 1))[:, np.newaxis]
    return float(librosa.feature.tempo(tg=mean, sr=SAMPLE_RATE, hop_length=4 * HOP)[0])


def onset_envelope(path: str | Path, start: float, duration: float,
                   check: Callable[[], None] | None = None) -> np.ndarray:
    """Onset strength per hop (frame ``t`` centred on ``t * HOP / SAMPLE_RATE`` s), computed in blocks."""
    import librosa

    mel = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS)
    window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)  # periodic Hann, as librosa's default
    carry = np.zeros(N_FFT // 2, np.float32)  # half a window of silence: frame t is centred on t * HOP
    previous: np.ndarray | None = None
    pieces: list[np.ndarray] = []
    for block in pcm_blocks(path, start, duration, SAMPLE_RATE):
        if check is not None:
            check()
        samples = np.concatenate([carry, block])
        frames = 1 + (len(samples) - N_FFT) // HOP if len(samples) >= N_FFT else 0
        if frames <= 0:
            carry = samples
            continue
        strided = np.lib.stride_tricks.sliding_window_view(samples, N_FFT)[::HOP][:frames]
        power = np.abs(np.fft.rfft(strided * window, axis=1)) ** 2
        db = 10.0 * np.log10(np.maximum(power @ mel.T, 10 ** (_FLOOR_DB / 10)))  # frames x mels
        if previous is not None:
            db_with_last = np.vstack([previous, db])
        else:
            db_with_last = np.vstack([db[:1], db])
        pieces.append(np.maximum(0.0, np.diff(db_with_last, axis=0)).mean(axis=1).astype(np.float32))
        previous = db[-1:]
        carry = samples[frames * HOP:]
    return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)


_warm = threading.Lock()
_warmed = False


def warm_up() -> threading.Thread | None:
    """Import librosa and run its beat tracker once, in a daemon thread, so the first render with
    ``cut_on_beats`` does not wait for it: numba compiles the tracker on its first use in a fresh
    environment (half a minute or more; it caches the result on disk, then loading it takes seconds).

    Called at start-up by the app (page and API) and by the CLI for a storyboard that cuts on the
    beats. Does nothing (returns None) after the first call, or when librosa is not installed.
    """
    global _warmed
    with _warm:
        if _warmed or importlib.util.find_spec("librosa") is None:
            return None
        _warmed = True

    def run() -> None:
        import librosa

        envelope = np.zeros(2048, np.float32)
        envelope[::86] = 1.0  # a pulse every ~0.5 s at this hop
        librosa.beat.beat_track(onset_envelope=envelope, sr=SAMPLE_RATE, hop_length=HOP, bpm=120.0)
        estimate_tempo(envelope)

    thread = threading.Thread(target=run, name="scene2video-beats-warm-up", daemon=True)
    thread.start()
    return thread
