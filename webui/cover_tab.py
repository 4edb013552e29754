"""Song → cover: drop a song (or your own stems), pick a voice model and key, press one button."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gradio as gr

from core.convert import DEFAULT_STEPS
from webui.common import experiment_choices, gradio_progress, user_errors
from webui.security import ui_checkpoint

N_STEM_PLAYERS = 4  # vocals, instrumental, backing, converted vocal


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
    gr.Markdown(
        "Drop a **song**: the vocal is separated (audio-separator: a Mel-Band Roformer on a CUDA GPU, MDX-Net on "
        "CPU; Models tab → download uvr_vocals / roformer_vocals), converted with your voice "
        "model and remixed with the instrumental, pitch-shifted by the same key. Already have stems? Open "
        "*Use my own stems* and separation is skipped."
    )
    with gr.Row():
        with gr.Column():
            song = gr.File(label="Song (any audio format)", file_count="single", elem_id="cover-song")
            with gr.Accordion("Use my own stems instead", open=False):
                vocals = gr.File(label="Vocal stem", file_count="single", elem_id="cover-vocals")
                instrumental = gr.File(label="Instrumental stem", file_count="single", elem_id="cover-instrumental")
            with gr.Row():
                exp = gr.Dropdown(choices=experiment_choices(), label="Voice model (experiment)", elem_id="cover-exp",
                                  allow_custom_value=True)
                refresh = gr.Button("↻", scale=0)
            ckpt = gr.Dropdown(choices=["best", "latest"], value="best", label="Checkpoint", allow_custom_value=True)
            key = gr.Slider(-12, 12, value=0, step=1, label="Key (semitones, applied to vocal and music)",
                            elem_id="cover-key")
            with gr.Accordion("Separation and mix", open=False):
                from core.cover import BACKING_DESCRIPTIONS

                separator = gr.Dropdown(choices=separation_choices("vocals"), value="auto", elem_id="cover-separator",
                                        label="Separation model (vocal SDR from audio-separator's table · download size · CPU speed)")
                backing = gr.Radio([("no split", "none"), *[(text, mode) for mode, text in BACKING_DESCRIPTIONS.items()]],
                                   value="none", label="Backing vocals (split with the karaoke model)")
                karaoke = gr.Dropdown(choices=separation_choices("karaoke"), value="auto", label="Karaoke model (lead vs. backing)")
                dereverb = gr.Checkbox(value=False, label="Remove reverb/echo from the lead vocal before conversion")
                dereverb_model = gr.Dropdown(choices=separation_choices("dereverb"), value="auto", label="De-reverb model")
                low_memory = gr.Checkbox(value=False, label="Lower GPU memory (Roformer: shorter segments; for cards under 6 GB)")
                vocal_gain = gr.Slider(-12, 12, value=0, step=0.5, label="Vocal gain (dB)")
                inst_gain = gr.Slider(-12, 12, value=0, step=0.5, label="Instrumental gain (dB)")
                backing_gain = gr.Slider(-12, 12, value=0, step=0.5, label="Backing gain (dB)")
                steps = gr.Slider(2, 100, value=DEFAULT_STEPS, step=1, label="Sampler steps (DPM-Solver++)")
                fmt = gr.Radio(["wav", "flac", "mp3"], value="mp3", label="Cover format")
            run = gr.Button("Make cover", variant="primary", elem_id="cover-run")
        with gr.Column():
            summary = gr.Markdown(elem_id="cover-summary")
            final = gr.Audio(label="Cover", type="filepath", interactive=False, elem_id="cover-final")
            download = gr.File(label="Download", interactive=False)
            with gr.Accordion("Stems", open=False):
                players = [
                    gr.Audio(label=name, type="filepath", interactive=False, visible=False)
                    for name in ("Separated vocal", "Instrumental", "Backing vocals", "Converted vocal")
                ]

    refresh.click(lambda: gr.Dropdown(choices=experiment_choices()), outputs=exp)
    run.click(
        _make_cover,
        inputs=[song, vocals, instrumental, exp, ckpt, key, backing, dereverb, vocal_gain, inst_gain, backing_gain,
                steps, fmt, separator, karaoke, dereverb_model, low_memory],
        outputs=[summary, final, download, *players],
    )  # fmt: skip


def _path(file: Any) -> Path | None:
    if not file:
        return None
    return Path(file if isinstance(file, str) else file.name)


@user_errors
def _make_cover(
    song: Any,
    vocals: Any,
    instrumental: Any,
    exp: str | None,
    ckpt: str,
    key: float,
    backing: str,
    dereverb: bool,
    vocal_gain: float,
    inst_gain: float,
    backing_gain: float,
    steps: float,
    fmt: str,
    separator: str = "auto",
    karaoke: str = "auto",
    dereverb_model: str = "auto",
    low_memory: bool = False,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - gradio injects the tracker through this default
) -> list[Any]:
    import argparse

    from core.convert import make_convert_fn
    from core.cover import CoverSettings, make_cover
    from core.errors import SvcoverError
    from core.experiment import Experiment
    from core.mix import MixSettings
    from core.separate import AUTO, LOW_MEMORY_SEGMENT_FRAMES, SeparationSettings

    song_path, vocals_path, inst_path = _path(song), _path(vocals), _path(instrumental)
    if song_path is None and (vocals_path is None or inst_path is None):
        raise SvcoverError("drop a song, or both a vocal stem and an instrumental stem")
    if not exp:
        raise SvcoverError("pick a voice model (experiment) first")
    experiment = Experiment.open(exp)
    if not experiment.exists():
        raise SvcoverError(f"voice model '{exp}' not found: no experiment folder {experiment.root}")
    report = gradio_progress(progress)
    report(0.0, "loading the voice model")
    args = argparse.Namespace(exp=exp, key=float(key), ckpt=ui_checkpoint(ckpt), steps=int(steps))
    convert_fn = make_convert_fn(args)
    mode = None if backing == "none" else backing
    settings = CoverSettings.build(
        SeparationSettings(model=separator or AUTO, karaoke_model=karaoke or AUTO, dereverb=bool(dereverb),
                           dereverb_model=dereverb_model or AUTO,
                           segment_frames=LOW_MEMORY_SEGMENT_FRAMES if low_memory else None),
        MixSettings(key=float(key), vocal_gain_db=float(vocal_gain), instrumental_gain_db=float(inst_gain),
                    backing_gain_db=float(backing_gain)),
        mode,
    )  # fmt: skip
    stem = (song_path or vocals_path).stem  # type: ignore[union-attr]
    output = experiment.outputs / f"{stem}_{exp}_key{float(key):g}_cover_{time.strftime('%H%M%S')}.{fmt}"
    if song_path is not None:
        result = make_cover(output, convert_fn, song=song_path, settings=settings, progress=report)
    else:
        result = make_cover(output, convert_fn, vocals=vocals_path, instrumental=inst_path, settings=settings,
                            progress=report)  # fmt: skip
    times = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    lines = [f"**{result.output.name}** — {times}" + (" (stems from cache)" if result.stems.cached and song_path else "")]
    lines += [f"Mix: {result.loudness_line()}"] if result.figures is not None else []
    if song_path is not None and result.stems.models:
        lines.append("Separation: " + " → ".join(result.stems.models))
    lines += [f"⚠️ {w}" for w in result.warnings]
    stems = [result.stems.vocals, result.stems.instrumental, result.stems.backing, result.converted_vocals]
    players = [gr.Audio(value=str(p), visible=True) if p else gr.Audio(visible=False) for p in stems]
    return ["\n\n".join(lines), str(result.output), str(result.output), *players]
