"""The soundtrack: audio fields at the door, fitting and beats, AAC in the MP4, PCM in the live segments.

Audio is generated here with numpy (a tone, a click track) and written as WAV; every
check reads the files back with ffprobe/ffmpeg as a user's tools would.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media import probe
from pipeline import Done, Limits, Progress, Renderer, StoryboardError, parse_storyboard
from pipeline.audio.fit import scale_to_total, snap_to_beats
from pipeline.audio.track import AudioTrack
from pipeline.video.encoder import EncodeSettings, SegmentedEncoder, ffmpeg_exe
from sound import click_track, decode_audio, longest_silence, probe_audio_stream, tone, write_wav

FPS = 24
AAC_FRAME = 1024  # samples


def board(audio: Path | None = None, durations=(1.0, 1.0), **fields) -> dict:
    data = {"scenes": [{"prompt": f"scene {i + 1}", "duration": d} for i, d in enumerate(durations)],
            "quality": "draft", "use_ai": False, **fields}
    if audio is not None:
        data["audio"] = str(audio)
    return data


# --- the door -------------------------------------------------------------------------------------

def test_no_audio_is_todays_silent_storyboard():
    sb = parse_storyboard(board())
    assert (sb.audio, sb.audio_start, sb.audio_volume, sb.fit, sb.cut_on_beats) == (None, 0.0, 1.0, "scenes", False)
    assert "audio" not in sb.to_dict()
    assert parse_storyboard(sb.to_dict()) == sb


def test_audio_fields_round_trip(tmp_path):
    song = write_wav(tmp_path / "song.wav", tone(3.0))
    sb = parse_storyboard(board(song, audio_start=0.5, audio_volume=0.8, fit="audio", cut_on_beats=True))
    assert (sb.audio, sb.audio_start, sb.audio_volume, sb.fit, sb.cut_on_beats) == (str(song), 0.5, 0.8, "audio", True)
    assert parse_storyboard(sb.to_json()) == sb


def make_video_only(path: Path) -> Path:
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "color=c=red:s=32x32:d=1", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.mp3", "audio file 'missing.mp3' was not found"),
    (lambda d: (d / "album.mp3").mkdir() or d / "album.mp3", "'album.mp3' was not found"),  # a folder
    (lambda d: (d / "notes.mp3").write_text("not audio at all") and d / "notes.mp3", "is not an audio file"),
    (lambda d: (d / "cut.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt ") and d / "cut.wav", "is not an audio file"),
    (lambda d: make_video_only(d / "clip.mp4"), "has no audio stream"),
])
def test_bad_audio_gives_one_line_naming_the_field(tmp_path, make, message):
    folder = tmp_path / "private-server-folder"
    folder.mkdir()
    with pytest.raises(StoryboardError, match=message) as caught:
        parse_storyboard(board(make(folder)))
    text = str(caught.value)
    assert "\n" not in text and "private-server-folder" not in text and "audio" in text


def test_audio_limits_and_options_that_need_audio(tmp_path):
    song = write_wav(tmp_path / "song.wav", tone(6.0))
    with pytest.raises(StoryboardError, match="audio lasts 6 seconds; the longest file allowed lasts 5"):
        parse_storyboard(board(song), Limits(max_audio_seconds=5))
    with pytest.raises(StoryboardError, match="audio_start is 7 seconds, but the audio lasts only 6.00"):
        parse_storyboard(board(song, audio_start=7))
    with pytest.raises(StoryboardError, match="the most allowed is 4 seconds"):
        parse_storyboard(board(song, fit="audio"), Limits(max_total_seconds=4))
    with pytest.raises(StoryboardError, match="2 scene\\(s\\) of 0.5 to 2 seconds can fill only 1 to 4 seconds"):
        parse_storyboard(board(song, fit="audio"), Limits(max_scene_seconds=2))
    with pytest.raises(StoryboardError, match="fit 'audio' needs an audio file"):
        parse_storyboard(board(fit="audio"))
    with pytest.raises(StoryboardError, match="cut_on_beats needs an audio file"):
        parse_storyboard(board(cut_on_beats=True))
    with pytest.raises(StoryboardError, match="fit 'song' is not allowed; choose one of scenes, audio"):
        parse_storyboard(board(song, fit="song"))
    with pytest.raises(StoryboardError, match="audio_volume must be between 0 and 4"):
        parse_storyboard(board(song, audio_volume=9))


@given(st.one_of(st.floats(allow_nan=True), st.integers(), st.text(max_size=5), st.booleans(), st.none()),
       st.sampled_from(["audio_start", "audio_volume"]))
def test_audio_numbers_parse_or_name_their_field(value, name):
    try:
        sb = parse_storyboard(board(**{name: value}))
    except StoryboardError as exc:
        assert f"Storyboard: {name} " in str(exc) and "\n" not in str(exc)
    else:
        parsed = getattr(sb, name)
        assert isinstance(parsed, float) and 0 <= parsed <= (4 if name == "audio_volume" else 3600)


# --- fitting (properties) -----------------------------------------------------------------------

durations_st = st.lists(st.floats(0.5, 60.0), min_size=1, max_size=12)


@given(durations_st, st.floats(0.0, 1.0))
def test_scaling_reaches_the_audio_length_and_keeps_every_scene_in_limits(durations, where):
    total = len(durations) * (0.5 + where * 59.5)
    scaled = scale_to_total(durations, total, 0.5, 60.0)
    assert abs(sum(scaled) - total) < 1e-6 * max(1.0, total)
    assert all(0.5 - 1e-9 <= d <= 60.0 + 1e-9 for d in scaled)


@given(durations_st, st.floats(0.2, 2.0), st.floats(0.0, 1.0))
@settings(max_examples=60, deadline=None)
def test_snapping_keeps_the_total_and_the_limits_and_lands_on_beats(durations, period, phase):
    total = sum(durations)
    beats = list(np.arange(phase * period, total, period))
    fitted = snap_to_beats(durations, beats, 0.5, 60.0)
    assert abs(sum(fitted.durations) - total) < 1e-6
    assert all(0.5 - 1e-9 <= d <= 60.0 + 1e-9 for d in fitted.durations)
    cuts = np.cumsum(fitted.durations)[:-1]
    on_beat = [c for c in cuts if min((abs(c - b) for b in beats), default=1.0) < 1e-9]
    assert list(fitted.beats_used) == pytest.approx(on_beat)
    if all(0.5 + period <= d <= 60.0 - period for d in durations):  # room to move: every cut takes its nearest beat
        assert len(fitted.beats_used) == len(durations) - 1
        assert all(abs(a - b) <= period / 2 + 1e-9 for a, b in zip(cuts, np.cumsum(durations)[:-1]))


def test_snapping_picks_the_nearest_beat():
    fitted = snap_to_beats([2.2, 1.9, 2.0], [0.47 + 0.5 * i for i in range(12)], 0.5, 60.0)
    assert fitted.beats_used == pytest.approx((1.97, 3.97))
    assert fitted.durations == pytest.approx((1.97, 2.0, 2.13))


def test_cuts_after_a_short_songs_end_stay_where_the_scenes_put_them(tmp_path):
    """Issue 26: 4 scenes of 3 s over a 6 s click track at 120 BPM gave 3.0/1.5/1.0/6.5 s (the cuts after the
    song's end were pulled onto its last beats); the cut at 3 s is on a beat, those at 6 and 9 s stay."""
    from pipeline.audio.soundtrack import prepare_soundtrack

    song = write_wav(tmp_path / "clicks.wav", click_track(6.0, 0.5 * np.arange(12)))
    sb = parse_storyboard(board(song, durations=(3.0, 3.0, 3.0, 3.0), transition="cut", cut_on_beats=True))
    fitted = prepare_soundtrack(sb)
    assert [scene.duration for scene in fitted.storyboard.scenes] == pytest.approx([3.0, 3.0, 3.0, 3.0], abs=0.02)
    assert fitted.beats_used == pytest.approx((3.0,), abs=0.02)


def _interval_around(cut: float, beats: list[float]) -> float:
    """The gap between the beats on either side of ``cut`` (the first or last gap outside them)."""
    i = min(max(int(np.searchsorted(beats, cut)), 1), len(beats) - 1)
    return beats[i] - beats[i - 1]


@given(durations_st, st.lists(st.floats(0.05, 3.0), min_size=2, max_size=40), st.floats(0.0, 1.0))
@settings(max_examples=150, deadline=None)
def test_snapping_moves_a_cut_at_most_half_a_beat_never_past_the_songs_end_never_out_of_order(durations, gaps,
                                                                                             song_share):
    total = sum(durations)
    song_end = song_share * total
    beats = [b for b in np.cumsum(gaps).tolist() if b <= song_end]
    fitted = snap_to_beats(durations, beats, 0.5, 60.0, song_end=song_end)
    before = np.cumsum(durations)[:-1]
    after = np.cumsum(fitted.durations)[:-1]
    assert abs(sum(fitted.durations) - total) < 1e-6
    assert all(0.5 - 1e-9 <= d <= 60.0 + 1e-9 for d in fitted.durations)  # so the cuts keep their order
    assert all(b - a >= 0.5 - 1e-9 for a, b in zip(after, after[1:]))
    for old, new in zip(before, after):
        if abs(new - old) < 1e-9:
            continue
        assert old <= song_end + 1e-9 and new <= song_end + 1e-9, (old, new, song_end)
        assert len(beats) >= 2 and abs(new - old) <= _interval_around(old, beats) / 2 + 1e-9, (old, new, beats)
        assert min(abs(new - b) for b in beats) < 1e-9


# --- the encoder: AAC in the MP4, PCM in the segments ------------------------------------------

def encode_with(tmp_path, track: AudioTrack | None, frames: int, segment_seconds: float = 1.0):
    encoder = SegmentedEncoder(EncodeSettings(64, 48, FPS, x264_preset="veryfast"), tmp_path, segment_seconds,
                               audio=track)
    segments = []
    for number in range(frames):
        segments += encoder.write(np.full((48, 64, 3), number % 250, np.uint8))
    segments += encoder.finish(tmp_path / "out.mp4")
    return segments


def test_no_audio_gives_todays_silent_video(tmp_path):
    segments = encode_with(tmp_path, None, 30)
    assert probe_audio_stream(tmp_path / "out.mp4") is None
    assert all(probe_audio_stream(segment.path) is None for segment in segments)


@pytest.mark.parametrize("audio_seconds", [10.0, 2.0])  # longer (faded out) and shorter (padded) than the video
def test_mp4_has_aac_as_long_as_the_video(tmp_path, audio_seconds):
    song = write_wav(tmp_path / "song.wav", tone(audio_seconds))
    frames = 130
    encode_with(tmp_path, AudioTrack(song, 0.5, 1.0, frames / FPS, audio_seconds - 0.5), frames)
    video, audio = probe(tmp_path / "out.mp4"), probe_audio_stream(tmp_path / "out.mp4")
    assert audio is not None and audio.codec == "aac"
    assert video.frames == frames and abs(audio.duration - video.duration) <= 1 / FPS
    samples = decode_audio(tmp_path / "out.mp4")
    if audio_seconds > frames / FPS:  # cut short: it fades out
        assert np.abs(samples[-480:]).max() < 0.2 * np.abs(samples[48000:96000]).max()
    else:  # ended early: silence after it
        assert np.abs(samples[round(1.6 * 48000):]).max() < 1e-3 < np.abs(samples[:48000]).max()


def test_segments_carry_continuous_audio_with_no_gap_at_boundaries(tmp_path):
    song = write_wav(tmp_path / "song.wav", tone(8.0))
    frames = 5 * FPS
    segments = encode_with(tmp_path, AudioTrack(song, 0.0, 1.0, frames / FPS, 8.0), frames)
    assert len(segments) == 5
    for segment in segments:  # each segment's audio covers its own video, decodable on its own
        assert probe_audio_stream(segment.path) is not None
        assert len(decode_audio(segment.path)) == pytest.approx(segment.frames / FPS * 48000, abs=960)
    joined = tmp_path / "joined.ts"
    joined.write_bytes(b"".join(segment.path.read_bytes() for segment in segments))
    samples = decode_audio(joined)
    assert len(samples) == pytest.approx(frames / FPS * 48000, abs=AAC_FRAME)
    assert longest_silence(samples) <= AAC_FRAME
    # No click either: a 440 Hz tone at 0.5 never moves more than ~0.03 between samples.
    assert np.abs(np.diff(samples[:-4800])).max() < 0.05


@pytest.mark.slow
def test_gradio_live_video_plays_the_segments_audio_without_gaps(tmp_path):
    import shutil

    import anyio
    import gradio as gr

    if not (shutil.which("ffmpeg") and shutil.which("ffprobe")):
        pytest.skip("Gradio's streaming video needs the system ffmpeg and ffprobe")
    song = write_wav(tmp_path / "song.wav", tone(8.0))
    segments = encode_with(tmp_path, AudioTrack(song, 0.0, 1.0, 4.0, 8.0), 4 * FPS)
    live = gr.Video(streaming=True)

    async def stream() -> list[bytes]:
        chunks = [(await live.stream_output(str(s.path), "audio-test", i == 0))[0]["data"]
                  for i, s in enumerate(segments)]
        last = await live.flush_stream_output("audio-test")
        return chunks + ([last["data"]] if last else [])

    played = tmp_path / "played.ts"
    played.write_bytes(b"".join(anyio.run(stream)))
    samples = decode_audio(played)[2 * AAC_FRAME:]  # Gradio's own stream opens with its encoder's priming
    assert len(samples) > 3.5 * 48000
    assert longest_silence(samples[:-4800]) <= AAC_FRAME
    assert np.abs(np.diff(samples[:-4800])).max() < 0.05  # no click where two segments meet


# --- whole renders --------------------------------------------------------------------------------

def cut_frames(video: Path) -> list[int]:
    """Frame numbers where the picture changes at once (hard cuts), from a small decode of the video."""
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(video), "-vf", "scale=32:18", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, 18, 32, 3).astype(np.int16)
    change = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))
    return [int(i) + 1 for i in np.flatnonzero(change > 8)]


def test_cuts_land_on_the_clicks_of_a_click_track(tmp_path):
    clicks = 0.37 + 0.5 * np.arange(12)  # 120 BPM, off the frame grid
    song = write_wav(tmp_path / "clicks.wav", click_track(6.0, clicks))
    sb = parse_storyboard(board(song, durations=(1.3, 1.2, 1.6, 1.1), transition="cut", cut_on_beats=True))
    done = list(Renderer(tmp_path / "out").render(sb))[-1]
    assert isinstance(done, Done), done
    cuts = cut_frames(done.video_path)
    assert len(cuts) == 3
    for cut in cuts:
        assert np.abs(clicks - cut / FPS).min() <= 1 / FPS, (cut / FPS, clicks)
    report = done.report
    assert len(report.beats) == 3 and report.audio
    assert [round(s.start * FPS) for s in report.scenes] == [0, *cuts]
    assert sum(s.length for s in report.scenes) == pytest.approx(report.duration, abs=1e-3)
    assert all(0.5 <= s.length <= 60 for s in report.scenes)
    for beat, cut in zip(report.beats, cuts):
        assert abs(beat - cut / FPS) <= 0.5 / FPS + 1e-9
    audio = probe_audio_stream(done.video_path)
    assert audio.codec == "aac" and abs(audio.duration - report.duration) <= 1 / FPS


def test_fitting_says_how_long_it_has_taken_while_it_runs(tmp_path, monkeypatch):
    """Issue 26: the first fit (the beat tracker's compile) showed an unchanging line for half a minute.
    The tick is made short here so that a fit of a fraction of a second shows several."""
    from pipeline import renderer as renderer_module

    monkeypatch.setattr(renderer_module, "FIT_TICK_S", 0.005)
    song = write_wav(tmp_path / "clicks.wav", click_track(10.0, 0.5 * np.arange(20)))
    sb = parse_storyboard(board(song, durations=(3.0, 3.0, 3.0), transition="cut", cut_on_beats=True, fps=4))
    events = list(Renderer(tmp_path / "out").render(sb))
    assert isinstance(events[-1], Done), events[-1]
    fitting = [e.message for e in events if isinstance(e, Progress) and e.message.startswith("Fitting")]
    assert fitting[0] == "Fitting the scenes to the audio (finding the beats)"
    ticks = [re.fullmatch(r"Fitting the scenes to the audio \(finding the beats\) · (\d+) s", m) for m in fitting[1:]]
    assert len(ticks) >= 2 and all(ticks), fitting
    seconds = [int(t.group(1)) for t in ticks]
    assert seconds == sorted(seconds)


def test_transitions_are_centred_on_the_beats(tmp_path):
    from pipeline.audio.soundtrack import prepare_soundtrack
    from pipeline.video.timeline import plan_timeline

    clicks = 0.37 + 0.5 * np.arange(12)
    song = write_wav(tmp_path / "clicks.wav", click_track(6.0, clicks))
    sb = parse_storyboard(board(song, durations=(1.3, 1.2, 1.6, 1.1), transition="crossfade",
                                transition_duration=0.5, cut_on_beats=True))
    fitted = prepare_soundtrack(sb)
    plan = plan_timeline(fitted.storyboard)
    assert len(fitted.beats_used) == 3
    for span, beat in zip(plan.transitions, fitted.beats_used):
        assert span.kind == "crossfade" and span.frames == 12
        assert abs((span.start + span.end) / 2 / FPS - beat) <= 1 / FPS
        assert np.abs(clicks - beat).min() <= 0.5 / FPS


def test_a_morph_is_planned_on_the_fitted_durations(tmp_path, tiny_model_dir):
    from pipeline.images.diffusers_backend import ModelManager

    song = write_wav(tmp_path / "song.wav", tone(3.0))
    # Before fitting a 0.6 s scene leaves room for 3 in-betweens at 8 fps; fitted to 1.5 s, for 6.
    sb = parse_storyboard(board(song, durations=(0.6, 0.6), fit="audio", transition="morph", transition_duration=1.0,
                                morph_frames=8, use_ai=True, fps=8, steps=1))
    model = ModelManager(str(tiny_model_dir), device="cpu", local_files_only=True)
    done = list(Renderer(tmp_path / "out", model).render(sb))[-1]
    assert isinstance(done, Done), done
    assert [s.length for s in done.report.scenes] == pytest.approx([1.5, 1.5], abs=1 / 8)
    morph = done.report.transitions[0]
    assert (morph.made, morph.generated + morph.cached) == ("generated", 6)


def test_cli_fit_audio_scales_the_scenes_to_the_song(tmp_path):
    from pipeline.cli import main

    write_wav(tmp_path / "song.wav", tone(4.5))
    folder = tmp_path / "boards"
    folder.mkdir()
    data = board(durations=(1.0, 2.0), fit="audio", audio_start=0.5, audio_volume=0.5, transition="crossfade")
    data["audio"] = "../song.wav"  # relative to the storyboard file
    (folder / "board.json").write_text(json.dumps(data))
    out, report = tmp_path / "video.mp4", tmp_path / "report.json"
    assert main(["render", str(folder / "board.json"), "-o", str(out), "--report", str(report), "--quiet"]) == 0
    facts = json.loads(report.read_text())
    assert facts["duration"] == pytest.approx(4.0, abs=0.5 / FPS) and facts["audio"] is True
    assert [s["length"] for s in facts["scenes"]] == pytest.approx([4 / 3, 8 / 3], abs=1 / FPS)
    audio = probe_audio_stream(out)
    assert audio.codec == "aac" and abs(audio.duration - probe(out).duration) <= 1 / FPS
    assert np.abs(decode_audio(out)).max() == pytest.approx(0.25, abs=0.03)  # volume 0.5 of a 0.5 tone


def test_cli_names_a_missing_audio_file(tmp_path, capsys):
    from pipeline.cli import main

    (tmp_path / "board.json").write_text(json.dumps(board(durations=(1.0,)) | {"audio": "nope.wav"}))
    assert main(["render", str(tmp_path / "board.json"), "-o", str(tmp_path / "v.mp4"), "--quiet"]) == 2
    assert "audio file 'nope.wav' was not found" in capsys.readouterr().err


# --- memory ---------------------------------------------------------------------------------------

def peak_rss_growth_mb(work) -> tuple[object, float]:
    """``work()``'s result and how far this process's RSS rose above where it started (sampled every 10 ms)."""
    import threading

    import psutil

    process = psutil.Process()
    base = process.memory_info().rss
    peak, stop = [base], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            stop.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = work()
    finally:
        stop.set()
        sampler.join()
    return result, (peak[0] - base) / 2**20


@pytest.mark.slow
def test_beat_tracking_memory_stays_flat_with_a_10_minute_song(tmp_path):
    from pipeline.audio.beats import detect_beats

    def song(name: str, seconds: float) -> Path:
        rate = 22050
        beats = 0.25 + 0.5 * np.arange(int(seconds * 2))
        return write_wav(tmp_path / name, click_track(seconds, beats, rate) + tone(seconds, 220, 0.1, rate), rate)

    short, long = song("short.wav", 30), song("long.wav", 600)
    detect_beats(short, 0, 30)  # imports librosa (and loads numba's cache) outside the measurement
    beats_short, grew_short = peak_rss_growth_mb(lambda: detect_beats(short, 0, 30))
    beats_long, grew_long = peak_rss_growth_mb(lambda: detect_beats(long, 0, 600))
    assert len(beats_short) >= 55 and len(beats_long) >= 1180
    # Decoding the whole song at once would hold 50 MB of samples (and its fine STFT over 1 GB);
    # in blocks the 10-minute song costs only its small per-hop arrays more than 30 s does.
    assert grew_long < grew_short + 40, (grew_short, grew_long)


def test_beat_tracking_stops_when_the_render_is_cancelled(tmp_path):
    from pipeline import RenderCancelled
    from pipeline.audio.beats import detect_beats

    song = write_wav(tmp_path / "song.wav", tone(30.0))
    calls = []

    def check() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise RenderCancelled()

    with pytest.raises(RenderCancelled):
        detect_beats(song, 0, 30, check)
    assert len(calls) == 2  # stopped after the first 10 s block, not at the end of the song
