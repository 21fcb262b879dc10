"""The soundtrack as the encoder's ffmpeg mixes it in: a second input, cut or padded to the video exactly.

The one ffmpeg that encodes the video also writes the audio into the same
segments, as one continuous stream cut where the picture is cut. In the segments
the audio is PCM (SMPTE 302M, the lossless audio MPEG-TS carries), in 20 ms
packets: a segment's audio decodes exactly on its own. AAC would not: each AAC
frame is overlap-added with the one before it, so a player that decodes the
segments one by one (Gradio's live video does, to re-encode them into its own
stream) gets a 21 ms glitch at every boundary. The MP4 gets AAC, encoded once
by the same process as a second output (``aac_output_arguments``), so the join
at the end only copies streams.

The H.264 of a video with audio has no B-frames: segments are cut at the video's
decode times, and B-frames put those two frames ahead of the picture, which would
leave each segment's audio that much short of its video.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SAMPLE_RATE = 48000  # SMPTE 302M's only rate
PACKET_SAMPLES = 960  # 20 ms: a segment's audio overruns its video by less than this
BITRATE = "192k"
FADE_OUT_SECONDS = 1.0  # when the audio goes on past the video's end
END_FADE_SECONDS = 0.02  # otherwise: just enough to end without a click


@dataclass(frozen=True)
class AudioTrack:
    """What to play under a video of ``duration`` seconds: ``path`` from ``start``, at ``volume``.

    ``available`` is how much audio the file has from ``start``. The track lasts
    exactly ``duration``: audio that goes on longer fades out over its last
    second, audio that ends early is followed by silence.
    """

    path: Path
    start: float
    volume: float
    duration: float
    available: float

    @property
    def fade_out(self) -> float:
        if self.available > self.duration + END_FADE_SECONDS:
            return min(FADE_OUT_SECONDS, self.duration / 4)
        return min(END_FADE_SECONDS, self.duration / 4)

    def input_arguments(self) -> list[str]:
        """ffmpeg input options: the file, already seeked to ``start`` (its timestamps then start at 0)."""
        return ["-ss", f"{self.start:.6f}", "-i", str(self.path)]

    def output_arguments(self, input_index: int, video_map: str = "0:v:0") -> list[str]:
        """Filter and stream maps for the segments' output (PCM), taking the video from ``video_map``.

        The filter also feeds the ``[aac]`` pad that :meth:`aac_output_arguments` encodes.
        """
        fade = self.fade_out
        chain = ",".join([
            f"volume={self.volume:.6g}", f"aresample={SAMPLE_RATE}", "apad",
            f"atrim=end={self.duration:.6f}",
            f"afade=t=out:st={max(0.0, self.duration - fade):.6f}:d={fade:.6f}",
            "asplit=2[pcm][aac]",
        ])
        graph = f"[{input_index}:a:0]{chain};[pcm]asetnsamples=n={PACKET_SAMPLES}:p=0[soundtrack]"
        return ["-filter_complex", graph, "-map", video_map,
                "-map", "[soundtrack]", "-c:a", "s302m", "-strict", "experimental", "-ac", "2"]

    @staticmethod
    def aac_output_arguments(path: Path) -> list[str]:
        """A second output of the same ffmpeg: the track as AAC in ``path`` (.m4a), for the MP4.

        Encoded while the video is, so joining the MP4 at the end only copies streams.
        """
        return ["-map", "[aac]", "-c:a", "aac", "-b:a", BITRATE, "-ac", "2", "-f", "mp4", str(path)]
