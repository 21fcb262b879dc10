"""The soundtrack: probe and decode an audio file with the bundled ffmpeg, find its beats,
fit the scenes' durations to it, and the ffmpeg arguments that mux it into the video.

Nothing here imports librosa until beats are asked for (``beats.detect_beats``).
"""
