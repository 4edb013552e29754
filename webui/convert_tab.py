"""Convert tab: a vocal in, the same performance in the trained voice out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from core.convert import (  # light: heavy imports are lazy there
    DEFAULT_PROTECT,
    DEFAULT_SAMPLER,
    DEFAULT_STEPS,
    SAMPLER_CHOICES,
)
from webui.common import experiment_choices, gradio_progress, user_errors
from webui.security import ui_checkpoint

SAMPLERS = list(SAMPLER_CHOICES)


def build() -> None:
    gr.Markdown(
        "Convert a **vocal** (no music: use *Song → cover* for full songs) with a trained voice model. "
        "`auto` key moves the melody into the range of the voice you trained."
    )
    with gr.Row():
        with gr.Column():
            vocal = gr.File(label="Vocal (any audio format)", file_count="single", elem_id="convert-input")
            with gr.Row():
                exp = gr.Dropdown(choices=experiment_choices(), label="Voice model (experiment)", elem_id="convert-exp",
                                  allow_custom_value=True)
                refresh = gr.Button("↻", scale=0)
            ckpt = gr.Dropdown(choices=["best", "latest"], value="best", label="Checkpoint", allow_custom_value=True,
                               elem_id="convert-ckpt")
            with gr.Row():
                key = gr.Slider(-24, 24, value=0, step=1, label="Key (semitones)", elem_id="convert-key")
                auto_key = gr.Checkbox(value=False, label="auto key", elem_id="convert-auto-key")
            with gr.Accordion("Sampler and extras", open=False):
                sampler = gr.Dropdown(SAMPLERS, value=DEFAULT_SAMPLER, label="Sampler")
                steps = gr.Slider(2, 100, value=DEFAULT_STEPS, step=1, label="Steps")
                index_rate = gr.Slider(0, 1, value=0, step=0.05, label="Retrieval index rate (0 = off)")
                protect = gr.Slider(0, 1, value=DEFAULT_PROTECT, step=0.05, elem_id="convert-protect",
                                    label="Protect breaths/consonants from the index (0 = off)")
                loudness = gr.Slider(0, 1, value=0, step=0.05, label="Follow the input's loudness (0 = off)")
                fmt = gr.Radio(["wav", "flac", "mp3"], value="wav", label="Output format")
            run = gr.Button("Convert", variant="primary", elem_id="convert-run")
        with gr.Column():
            summary = gr.Markdown(elem_id="convert-summary")
            result = gr.Audio(label="Converted", type="filepath", interactive=False, elem_id="convert-result")
            download = gr.File(label="Download", interactive=False)
            f0_plot = gr.LinePlot(x="seconds", y="Hz", color="curve", title="F0: source vs converted", visible=False,
                                  elem_id="convert-f0-plot")

    refresh.click(lambda: gr.Dropdown(choices=experiment_choices()), outputs=exp)
    exp.change(_checkpoint_choices, inputs=exp, outputs=ckpt)
    run.click(
        _convert,
        inputs=[vocal, exp, ckpt, key, auto_key, sampler, steps, index_rate, protect, loudness, fmt],
        outputs=[summary, result, download, f0_plot],
    )


def _checkpoint_choices(exp: str | None) -> Any:
    choices = ["best", "latest"]
    if exp:
        try:
            from core.checkpoint_store import step_checkpoints
            from core.experiment import Experiment

            # names, not server paths: the conversion stage finds them in the experiment's folder
            choices += [p.name for _, p in reversed(step_checkpoints(Experiment.open(exp)))]
        except Exception:  # an invalid name simply offers the defaults; converting reports it
            pass
    return gr.Dropdown(choices=choices, value="best")


@user_errors
def _convert(
    vocal: Any,
    exp: str | None,
    ckpt: str,
    key: float,
    auto_key: bool,
    sampler: str,
    steps: float,
    index_rate: float,
    protect: float,
    loudness: float,
    fmt: str,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - gradio injects the tracker through this default
) -> list[Any]:
    import pandas as pd

    from core.convert import ConvertConfig, convert_files
    from core.errors import SvcoverError

    if not vocal:
        raise SvcoverError("drop a vocal file first")
    if not exp:
        raise SvcoverError("pick a voice model (experiment) first")
    path = Path(vocal if isinstance(vocal, str) else vocal.name)
    config = ConvertConfig(
        key=None if auto_key else float(key), sampler=sampler, steps=int(steps), index_rate=float(index_rate),
        protect=float(protect), loudness_match=float(loudness), ckpt=ui_checkpoint(ckpt), format=fmt,
    )
    results = convert_files(exp, path, None, config, progress=gradio_progress(progress))
    r = results[0]
    lines = [
        f"**{r.output.name}** — key {r.key:+g}"
        + (f" (suggested {r.suggested_key:+.0f})" if r.suggested_key is not None else ""),
        f"{r.seconds_audio:.1f} s of audio in {r.seconds_taken:.1f} s "
        f"(features {r.timings.get('features', 0):.1f} s, sampling {r.timings.get('sampling', 0):.1f} s, "
        f"vocoder {r.timings.get('vocoder', 0):.1f} s)",
    ]
    lines += [f"⚠️ {w}" for w in r.warnings]
    plot = gr.LinePlot(visible=False)
    if r.source_f0 is not None and r.converted_f0 is not None:
        hop_s = 512 / 44100
        every = max(1, len(r.source_f0) // 3000)  # a long song would otherwise send ~20k points per minute
        rows = []
        for name, curve in (("source", r.source_f0), ("converted", r.converted_f0)):
            for i in range(0, len(curve), every):
                if curve[i] > 0:
                    rows.append({"seconds": i * hop_s, "Hz": float(curve[i]), "curve": name})
        if rows:
            plot = gr.LinePlot(value=pd.DataFrame(rows), visible=True)
    return ["\n\n".join(lines), str(r.output), str(r.output), plot]
