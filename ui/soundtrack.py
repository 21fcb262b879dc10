"""The soundtrack controls: an audio upload with its waveform, where it starts, its volume, the fit
and the beat option. Their values go into the Storyboard fields of the same names."""

from __future__ import annotations

from typing import Any

import gradio as gr

from pipeline import RenderReport
from pipeline.contract.fields import FIELDS_BY_NAME, FITS

SOUNDTRACK_FIELDS = ("audio", "audio_start", "audio_volume", "fit", "cut_on_beats")
"""The Storyboard fields these widgets set, in the order ``build_soundtrack`` returns them."""


def _info(name: str) -> str:
    return FIELDS_BY_NAME[name].help


def build_soundtrack() -> list:
    """The widgets, in SOUNDTRACK_FIELDS order, inside a "Soundtrack" accordion."""
    spec = FIELDS_BY_NAME
    with gr.Accordion("Soundtrack", open=False):
        # The waveform (Gradio's WaveSurfer player) shows only with show_recording_waveform on (its default).
        audio = gr.Audio(label=spec["audio"].label, type="filepath", sources=["upload"], elem_id="audio",
                         waveform_options=gr.WaveformOptions(show_recording_waveform=True))
        with gr.Row():
            start = gr.Number(value=spec["audio_start"].default, minimum=0, label=spec["audio_start"].label,
                              info=_info("audio_start"), elem_id="field-audio_start")
            volume = gr.Slider(0, 2, value=spec["audio_volume"].default, step=0.05, label=spec["audio_volume"].label,
                            elem_id="field-audio_volume")
        with gr.Row():
            fit = gr.Radio(list(FITS), value=spec["fit"].default, label=spec["fit"].label, info=_info("fit"),
                           elem_id="field-fit")
            beats = gr.Checkbox(value=spec["cut_on_beats"].default, label=spec["cut_on_beats"].label,
                                info=_info("cut_on_beats"), elem_id="cut-on-beats")
    return [audio, start, volume, fit, beats]


def wire_soundtrack(widgets: list) -> None:
    """A song picked: start loading the beat tracker in the background, so Generate does not wait for it."""
    widgets[0].upload(_warm_up_beats, None, None, queue=False, api_visibility="private")


def _warm_up_beats() -> None:
    from pipeline.audio.beats import warm_up

    warm_up()


def soundtrack_fields(values: tuple | list) -> dict[str, Any]:
    """Storyboard fields for the widgets' values (no audio file: only the options, so the check names them)."""
    fields = dict(zip(SOUNDTRACK_FIELDS, values))
    if not isinstance(fields.get("audio"), str) or not fields["audio"]:  # nothing uploaded (or "no change")
        fields.pop("audio", None)
    return {key: value for key, value in fields.items() if value is not None}


def timing_lines(report: RenderReport) -> list[str]:
    """Where each scene ended up once fitted to the audio, for the notice."""
    if not report.audio:
        return []
    beats = f" · cuts on {len(report.beats)} beat(s)" if report.beats else ""
    scenes = " · ".join(f"{s.index + 1}: {s.start:.2f} s +{s.length:.2f} s" for s in report.scenes)
    return ["", f"🎵 Scenes after fitting to the audio{beats}: {scenes}"]  # blank line: not part of a list above
