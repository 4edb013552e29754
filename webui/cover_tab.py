"""Song → cover: drop a song (or your own stems), pick a voice model and key, press one button.

The cover is a job (core.jobs): the button submits a CoverRequest and the tab renders the newest cover job on a
timer, so a reload (or a restarted server) finds the running job again, and every finished cover stays in the
experiment's outputs history.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from core.checkpoint_store import CHOICES as CHECKPOINT_CHOICES
from core.convert import FORMATS
from core.cover import BACKING_DESCRIPTIONS
from core.jobs.stages import CoverRequest
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

KEY_RANGE = (-12, 12)
NO_BACKING_SPLIT = "none"  # the Backing vocals choice that means CoverSettings.backing = None
STEM_LABELS = ("Separated vocal", "Instrumental", "Backing vocals", "Converted vocal")
STEM_KEYS = ("vocals", "instrumental", "backing", "converted_vocals")


def separation_choices(role: str) -> list[tuple[str, str]]:
    """Picker entries for one separation role: "auto" (what this machine uses), then each model with
    its vocal SDR, size and CPU speed class, then installed ensemble presets."""
    from core.separate import AUTO, uvr_dir
    from core.separation_models import catalogue_entry, choices, default_model

    model_dir = uvr_dir()
    chosen = default_model(role, model_dir=model_dir)
    entry = catalogue_entry(chosen)
    auto = f"Auto (this machine: {entry.title if entry else chosen})"
    return [(auto, AUTO), *choices(role, model_dir)]


def build() -> None:
    defaults = CoverRequest(exp="")  # the conversion's, separation's and mix's own defaults
    separation, mix = defaults.settings.separation, defaults.settings.mix
    gr.Markdown(
        "Drop a **song**: the vocal is separated (audio-separator: a Mel-Band Roformer on a CUDA GPU, MDX-Net on "
        "CPU; Models tab → download uvr_vocals / roformer_vocals), converted with your voice "
        "model and remixed with the instrumental, pitch-shifted by the same key. Already have stems? Open "
        "*Use my own stems* and separation is skipped. The cover runs as a job: you can reload or close this page "
        "and find it here (and in the **Jobs** tab) when you come back."
    )
    with gr.Row():
        with gr.Column():
            song = gr.File(label="Song (any audio format)", file_count="single", elem_id="cover-song")
            with gr.Accordion("Use my own stems instead", open=False):
                vocals = gr.File(label="Vocal stem", file_count="single", elem_id="cover-vocals")
                instrumental = gr.File(label="Instrumental stem", file_count="single", elem_id="cover-instrumental")
            exp = experiment_picker("cover", label="Voice model (experiment)", preselect_on_refresh=True)
            ckpt = gr.Dropdown(choices=list(CHECKPOINT_CHOICES), value=defaults.convert.ckpt, label="Checkpoint",
                               allow_custom_value=True)
            key = gr.Slider(*KEY_RANGE, value=mix.key, step=1, label="Key (semitones, applied to vocal and music)",
                            elem_id="cover-key")
            with gr.Accordion("Separation and mix", open=False):
                separator = gr.Dropdown(choices=separation_choices("vocals"), value=separation.model, elem_id="cover-separator",
                                        label="Separation model (vocal SDR from audio-separator's table · download size · CPU speed)")
                backing = gr.Radio([("no split", NO_BACKING_SPLIT), *[(text, mode) for mode, text in BACKING_DESCRIPTIONS.items()]],
                                   value=defaults.settings.backing or NO_BACKING_SPLIT,
                                   label="Backing vocals (split with the karaoke model)")
                karaoke = gr.Dropdown(choices=separation_choices("karaoke"), value=separation.karaoke_model,
                                      label="Karaoke model (lead vs. backing)")
                dereverb = gr.Checkbox(value=separation.dereverb, label="Remove reverb/echo from the lead vocal before conversion")
                dereverb_model = gr.Dropdown(choices=separation_choices("dereverb"), value=separation.dereverb_model,
                                             label="De-reverb model")
                low_memory = gr.Checkbox(value=separation.segment_frames is not None,
                                         label="Lower GPU memory (Roformer: shorter segments; for cards under 6 GB)")
                vocal_gain = gr.Slider(-12, 12, value=mix.vocal_gain_db, step=0.5, label="Vocal gain (dB)")
                inst_gain = gr.Slider(-12, 12, value=mix.instrumental_gain_db, step=0.5, label="Instrumental gain (dB)")
                backing_gain = gr.Slider(-12, 12, value=mix.backing_gain_db, step=0.5, label="Backing gain (dB)")
                steps = gr.Slider(2, 100, value=defaults.convert.steps, step=1, label="Sampler steps (DPM-Solver++)",
                                  elem_id="cover-steps")
                fmt = gr.Radio(list(FORMATS), value=defaults.format, label="Cover format")
            run, stop = run_and_stop_buttons("cover", "Make cover")
        with gr.Column():
            job_status, summary, warnings, use_key, final, download = job_result_widgets("cover", "Cover", "cover-final")
            with gr.Accordion("Stems", open=False):
                players = [gr.Audio(label=name, type="filepath", interactive=False, visible=False) for name in STEM_LABELS]
            with gr.Accordion("Outputs history (newest first)", open=True):
                history = gr.HTML(elem_id="cover-history")

    shown = gr.State("")  # "<job id>:<state>" whose result is on the page (the timer skips re-sending players)
    suggestion = gr.State(None)
    timer = gr.Timer(POLL_SECONDS)
    exp.change(history_html, inputs=exp, outputs=history, show_progress="hidden")
    render_outputs = [shown, suggestion, job_status, summary, warnings, use_key, final, download, *players, history]
    run.click(
        _submit,
        inputs=[song, vocals, instrumental, exp, ckpt, key, backing, dereverb, vocal_gain, inst_gain, backing_gain,
                steps, fmt, separator, karaoke, dereverb_model, low_memory],
        outputs=job_status,
    )  # fmt: skip
    stop.click(lambda: stop_latest("cover", idle="No cover is running."), outputs=job_status)
    timer.tick(render, inputs=[shown, exp], outputs=render_outputs, show_progress="hidden")
    use_key.click(lambda k: gr.update(value=k) if k is not None else gr.skip(), inputs=suggestion, outputs=key)


def _path(file: Any) -> Path | None:
    if not file:
        return None
    return Path(file if isinstance(file, str) else file.name)


def cover_request(song: Any, vocals: Any, instrumental: Any, exp: str | None, ckpt: str, key: float, backing: str,
                  dereverb: bool, vocal_gain: float, inst_gain: float, backing_gain: float, steps: float, fmt: str,
                  separator: str = "auto", karaoke: str = "auto", dereverb_model: str = "auto",
                  low_memory: bool = False) -> Any:  # fmt: skip
    """The Make cover button's job request (the conversion's and the cover's own config dataclasses)."""
    from core.convert import ConvertConfig, open_voice_model
    from core.cover import CoverSettings, low_memory_segment
    from core.errors import SvcoverError
    from core.jobs.stages import CoverRequest
    from core.mix import MixSettings
    from core.separate import AUTO, SeparationSettings

    song_path, vocals_path, inst_path = _path(song), _path(vocals), _path(instrumental)
    if song_path is None and (vocals_path is None or inst_path is None):
        raise SvcoverError("drop a song, or both a vocal stem and an instrumental stem")
    if not exp:
        raise SvcoverError("pick a voice model (experiment) first")
    open_voice_model(exp)
    settings = CoverSettings.build(
        SeparationSettings(model=separator or AUTO, karaoke_model=karaoke or AUTO, dereverb=bool(dereverb),
                           dereverb_model=dereverb_model or AUTO,
                           segment_frames=low_memory_segment(bool(low_memory))),
        MixSettings(key=float(key), vocal_gain_db=float(vocal_gain), instrumental_gain_db=float(inst_gain),
                    backing_gain_db=float(backing_gain)),
        None if backing == NO_BACKING_SPLIT else backing,
    )  # fmt: skip
    convert = ConvertConfig(key=float(key), ckpt=ui_checkpoint(ckpt), steps=int(steps), format="wav").validate()
    if song_path is not None:
        return CoverRequest(exp=exp, song=str(song_path), convert=convert, settings=settings, format=fmt,
                            label=song_path.name)  # fmt: skip
    return CoverRequest(exp=exp, vocals=str(vocals_path), instrumental=str(inst_path), convert=convert,
                        settings=settings, format=fmt, label=vocals_path.name)  # type: ignore[union-attr]  # fmt: skip


@user_errors
def _submit(*form: Any) -> str:
    job = runner().submit(cover_request(*form))
    return status_markdown(job)


def render(shown: str, exp: str | None) -> list[Any]:
    """The newest cover job: its progress every tick; its result (players, warnings, history) once it changes."""
    job, status, key = newest_job("cover", "*No cover yet: drop a song and press **Make cover**.*")
    n_rest = 6 + len(STEM_LABELS)  # summary, warnings, use_key, final, download, players, history
    if key == shown:  # only the progress line changes
        return [gr.skip(), gr.skip(), status, *[gr.skip()] * n_rest]
    if job is None or job.active:
        cleared = [gr.update(value=None, visible=False) for _ in STEM_LABELS]
        return [key, None, status, "", "", gr.update(visible=False), None, None, *cleared, history_html(exp)]
    details = job.details
    lines = []
    if job.outputs:
        times = ", ".join(f"{k} {v:.1f} s" for k, v in (details.get("seconds") or {}).items())
        cached = " (stems from cache)" if details.get("cached_stems") else ""
        lines.append(f"**{Path(job.outputs[0]).name}** — {times}{cached}")
        if details.get("loudness"):
            lines.append(f"Mix: {details['loudness']}")
        if details.get("separation_models"):
            lines.append("Separation: " + " → ".join(details["separation_models"]))
    offer, warnings, use_key, output = finished_job_result(job, KEY_RANGE)
    stems = details.get("stems") or {}
    players = [gr.update(value=stems.get(k), visible=bool(stems.get(k))) for k in STEM_KEYS]
    return [key, offer, status, "\n\n".join(lines), warnings, use_key, output, output, *players,
            history_html(exp or job.experiment)]  # fmt: skip
