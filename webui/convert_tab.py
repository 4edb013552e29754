"""Convert tab: a vocal in, the same performance in the trained voice out (as a job; results kept as a history)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from core.checkpoint_store import CHOICES as CHECKPOINT_CHOICES
from core.convert import FORMATS, ConvertConfig, open_voice_model  # light: heavy imports are lazy there
from core.model.samplers import SAMPLERS
from webui.common import (
    experiment_picker,
    finished_job_result,
    job_result_widgets,
    run_and_stop_buttons,
    user_errors,
)
from webui.jobs_view import POLL_SECONDS, newest_job, runner, status_markdown, stop_latest
from webui.outputs_view import history_html
from webui.security import ui_checkpoint

KEY_RANGE = (-24, 24)


def build() -> None:
    defaults = ConvertConfig()
    gr.Markdown(
        "Convert a **vocal** (no music: use *Song → cover* for full songs) with a trained voice model. "
        "`auto` key moves the melody into the range of the voice you trained. Each result is kept in the "
        "outputs history below (a new conversion never replaces an earlier one)."
    )
    with gr.Row():
        with gr.Column():
            vocal = gr.File(label="Vocal (any audio format)", file_count="single", elem_id="convert-input")
            exp = experiment_picker("convert", label="Voice model (experiment)", preselect_on_refresh=True)
            ckpt = gr.Dropdown(choices=list(CHECKPOINT_CHOICES), value=defaults.ckpt, label="Checkpoint", allow_custom_value=True,
                               elem_id="convert-ckpt")
            with gr.Row():
                key = gr.Slider(*KEY_RANGE, value=defaults.key, step=1, label="Key (semitones)", elem_id="convert-key")
                auto_key = gr.Checkbox(value=defaults.key is None, label="auto key", elem_id="convert-auto-key")
            with gr.Accordion("Sampler and extras", open=False):
                sampler = gr.Dropdown(list(SAMPLERS), value=defaults.sampler, label="Sampler")
                steps = gr.Slider(2, 100, value=defaults.steps, step=1, label="Steps")
                index_rate = gr.Slider(0, 1, value=defaults.index_rate, step=0.05, label="Retrieval index rate (0 = off)")
                protect = gr.Slider(0, 1, value=defaults.protect, step=0.05, elem_id="convert-protect",
                                    label="Protect breaths/consonants from the index (0 = off)")
                loudness = gr.Slider(0, 1, value=defaults.loudness_match, step=0.05, label="Follow the input's loudness (0 = off)")
                fmt = gr.Radio(list(FORMATS), value=defaults.format, label="Output format")
            run, stop = run_and_stop_buttons("convert", "Convert")
        with gr.Column():
            job_status, summary, warnings, use_key, result, download = job_result_widgets(
                "convert", "Converted", "convert-result"
            )
            f0_plot = gr.LinePlot(x="seconds", y="Hz", color="curve", title="F0: source vs converted", visible=False,
                                  elem_id="convert-f0-plot")
            with gr.Accordion("Outputs history (newest first)", open=True):
                history = gr.HTML(elem_id="convert-history")

    shown = gr.State("")
    suggestion = gr.State(None)
    timer = gr.Timer(POLL_SECONDS)
    exp.change(_checkpoint_choices, inputs=exp, outputs=ckpt)
    exp.change(history_html, inputs=exp, outputs=history, show_progress="hidden")
    run.click(
        _submit,
        inputs=[vocal, exp, ckpt, key, auto_key, sampler, steps, index_rate, protect, loudness, fmt],
        outputs=job_status,
    )
    stop.click(lambda: stop_latest("convert", idle="No conversion is running."), outputs=job_status)
    render_outputs = [shown, suggestion, job_status, summary, warnings, use_key, result, download, f0_plot, history]
    timer.tick(render, inputs=[shown, exp], outputs=render_outputs, show_progress="hidden")
    use_key.click(lambda k: (gr.update(value=k), gr.update(value=False)) if k is not None else (gr.skip(), gr.skip()),
                  inputs=suggestion, outputs=[key, auto_key])  # fmt: skip


def _checkpoint_choices(exp: str | None) -> Any:
    """best, latest and the step checkpoints, shown by file name (the value is the file's path)."""
    choices: list[Any] = list(CHECKPOINT_CHOICES)
    if exp:
        try:
            from core.checkpoint_store import step_checkpoints
            from core.experiment import Experiment

            # names, not server paths: the conversion stage finds them in the experiment's folder
            choices += [p.name for _, p in reversed(step_checkpoints(Experiment.open(exp)))]
        except Exception:  # an invalid name simply offers the defaults; converting reports it
            pass
    return gr.Dropdown(choices=choices, value=ConvertConfig.ckpt)


def convert_request(vocal: Any, exp: str | None, ckpt: str, key: float, auto_key: bool, sampler: str, steps: float,
                    index_rate: float, protect: float, loudness: float, fmt: str) -> Any:  # fmt: skip
    from core.errors import SvcoverError
    from core.jobs.stages import ConvertRequest

    if not vocal:
        raise SvcoverError("drop a vocal file first")
    if not exp:
        raise SvcoverError("pick a voice model (experiment) first")
    open_voice_model(exp)
    path = Path(vocal if isinstance(vocal, str) else vocal.name)
    config = ConvertConfig(
        key=None if auto_key else float(key), sampler=sampler, steps=int(steps), index_rate=float(index_rate),
        protect=float(protect), loudness_match=float(loudness), ckpt=ui_checkpoint(ckpt), format=fmt,
    ).validate()  # fmt: skip
    return ConvertRequest(exp=exp, input=str(path), config=config, label=path.name)


@user_errors
def _submit(*form: Any) -> str:
    return status_markdown(runner().submit(convert_request(*form)))


def render(shown: str, exp: str | None) -> list[Any]:
    """The newest conversion job: progress every tick; its result once it changes."""
    job, status, key = newest_job("convert", "*No conversion yet: drop a vocal and press **Convert**.*")
    if key == shown:
        return [gr.skip(), gr.skip(), status, *[gr.skip()] * 7]
    if job is None or job.active:
        return [key, None, status, "", "", gr.update(visible=False), None, None, gr.update(visible=False),
                history_html(exp)]  # fmt: skip
    d = job.details
    lines = []
    if job.outputs:
        suggested = f" (suggested {d['suggested_key']:+.0f})" if d.get("suggested_key") is not None else ""
        t = d.get("timings") or {}
        lines = [
            f"**{Path(job.outputs[0]).name}** — key {d.get('key', 0):+g}{suggested}",
            f"{d.get('seconds_audio', 0):.1f} s of audio in {d.get('seconds_taken', 0):.1f} s (features "
            f"{t.get('features', 0):.1f} s, sampling {t.get('sampling', 0):.1f} s, vocoder {t.get('vocoder', 0):.1f} s)",
        ]
    offer, warnings, use_key, output = finished_job_result(job, KEY_RANGE)
    return [key, offer, status, "\n\n".join(lines), warnings, use_key, output, output, f0_plot(d),
            history_html(exp or job.experiment)]  # fmt: skip


def f0_plot(details: dict) -> Any:
    import pandas as pd

    hop = details.get("f0_hop_s")
    rows = []
    for name, field in (("source", "source_f0"), ("converted", "converted_f0")):
        for i, hz in enumerate(details.get(field) or []):
            if hz > 0:
                rows.append({"seconds": i * hop, "Hz": float(hz), "curve": name})
    if not rows or not hop:
        return gr.LinePlot(visible=False)
    return gr.LinePlot(value=pd.DataFrame(rows), visible=True)
