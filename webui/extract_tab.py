"""Extract tab: compute the features of an experiment's chunks, then look at one chunk's F0 and the singer's range."""

from __future__ import annotations

from typing import Any

import gradio as gr

from core.device import DEVICE_CHOICES
from core.features.encoders import ContentEncoder
from core.features.extract import ExtractConfig
from core.features.f0 import F0_METHODS
from core.jobs.model import JobState
from webui.common import experiment_picker, user_errors
from webui.jobs_view import POLL_SECONDS, latest_job, newest_job, runner, status_markdown

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def build() -> None:
    defaults = ExtractConfig()
    gr.Markdown(
        "Compute content units, pitch (F0), loudness and mel spectrograms of every chunk of an experiment. "
        "Results are cached: running again only computes what is missing or changed (switching the F0 "
        "method recomputes only F0), and a stopped run continues where it left off."
    )
    with gr.Row():
        with gr.Column(scale=1):
            # Choosing an experiment is what shows its earlier results (the change event).
            exp = experiment_picker("extract", allow_custom_value=False)
            f0_method = gr.Dropdown(
                choices=list(F0_METHODS), value=defaults.f0_method, label="F0 method", elem_id="extract-f0",
                info="rmvpe: best (Models tab → download rmvpe) · fcpe: fast, no download · harvest/parselmouth: CPU classics",
            )  # fmt: skip
            encoder = gr.Dropdown(
                choices=[e.value for e in ContentEncoder], value=defaults.encoder, label="Content encoder",
                elem_id="extract-encoder", info="contentvec768l12 matches the Diffusion-SVC pretrained bases",
            )  # fmt: skip
            device = gr.Dropdown(choices=list(DEVICE_CHOICES), value=defaults.device, label="Device",
                                 elem_id="extract-device")
            run = gr.Button("Extract features", variant="primary", elem_id="extract-run")
            index_run = gr.Button("Build retrieval index", elem_id="extract-index-run")
            index_status = gr.Markdown(elem_id="extract-index-job")
        with gr.Column(scale=2):
            job_status = gr.Markdown(elem_id="extract-job")
            summary = gr.Markdown(elem_id="extract-summary")
            range_plot = gr.Plot(label="Singer's range (voiced frames per note)", elem_id="extract-range")
    with gr.Row():
        chunk = gr.Dropdown(choices=[], label="Chunk", elem_id="extract-chunk", scale=1)
        f0_plot = gr.Plot(label="F0 of the chosen chunk", elem_id="extract-f0-plot", scale=3)

    shown = gr.State("")
    timer = gr.Timer(POLL_SECONDS)
    run.click(_submit, inputs=[exp, f0_method, encoder, device], outputs=job_status)
    index_run.click(_submit_index, inputs=exp, outputs=index_status)
    timer.tick(lambda: status_markdown(latest_job("index")), outputs=index_status, show_progress="hidden")
    timer.tick(render, inputs=[shown, exp], outputs=[shown, job_status, summary, range_plot, chunk, f0_plot],
               show_progress="hidden")  # fmt: skip
    exp.change(_show_existing, inputs=exp, outputs=[summary, range_plot, chunk, f0_plot])
    chunk.change(_chunk_plot, inputs=[exp, chunk], outputs=f0_plot)


@user_errors
def _submit(exp: str | None, f0_method: str, encoder: str, device: str) -> str:
    from core.errors import SvcoverError
    from core.jobs.stages import ExtractRequest

    if not exp:
        raise SvcoverError("choose an experiment first (build one in the Dataset tab)")
    config = ExtractConfig(f0_method=f0_method, encoder=encoder, device=device).validate()
    return status_markdown(runner().submit(ExtractRequest(exp=exp, config=config)))


@user_errors
def _submit_index(exp: str | None) -> str:
    """The retrieval index of the experiment's content features (optional: the Convert tab's index rate)."""
    from core.errors import SvcoverError
    from core.jobs.stages import IndexRequest

    if not exp:
        raise SvcoverError("choose an experiment first")
    return status_markdown(runner().submit(IndexRequest(exp=exp)))


def render(shown: str, exp: str | None) -> list[Any]:
    """The newest extraction job: progress every tick; when it ends, the features of its experiment as on disk."""
    job, status, key = newest_job("extract")
    if key == shown or job is None or job.active or not shown:  # the first tick after a load shows the status only
        return [key if not shown else gr.skip(), status, *[gr.skip()] * 4]
    if job.state != JobState.DONE or job.experiment != exp:
        return [key, status, *[gr.skip()] * 4]
    text, figure, chunks, plot = _show_existing(job.experiment)
    summary = job.details.get("summary", "")
    return [key, status, f"### Features of `{job.experiment}`\n\n{summary}\n\n{text.split(chr(10), 2)[-1]}", figure,
            chunks, plot]  # fmt: skip


@user_errors
def _show_existing(exp: str | None) -> list[Any]:
    """Show the stats and plots of an earlier run when an experiment is chosen."""
    from core.errors import SvcoverError
    from core.features.store import list_feature_chunks, load_stats

    empty = ["", None, gr.update(choices=[], value=None), None]
    if not exp:
        return empty
    chunks = list_feature_chunks(exp)
    try:
        stats = load_stats(exp)
    except SvcoverError:  # not extracted yet: nothing to show
        return ["*No features yet: press **Extract features**.*", None, gr.update(choices=[], value=None), None]
    first = chunks[0] if chunks else None
    text = (f"### Features of `{exp}` (earlier run)\n\n{stats['n_chunks']} chunks, {stats['encoder']} + "
            f"{stats['f0_method']}\n\n{_range_text(stats)}")  # fmt: skip
    return [text, range_figure(stats), gr.update(choices=chunks, value=first), _chunk_plot(exp, first) if first else None]


@user_errors
def _chunk_plot(exp: str | None, chunk: str | None) -> Any:
    from core.features.store import load_features

    if not exp or not chunk:
        return None
    return f0_figure(load_features(exp, chunk), chunk)


def note_name(midi: float) -> str:
    """``69 -> 'A4'`` (nearest note)."""
    n = int(round(midi))
    return f"{NOTE_NAMES[n % 12]}{n // 12 - 1}"


def _range_text(stats: dict) -> str:
    if stats.get("f0_hz_p50") is None:
        return "**Range:** no voiced frames found (silent or unpitched chunks)."
    lo, mid, hi = stats["f0_midi_p5"], stats["f0_midi_p50"], stats["f0_midi_p95"]
    return (f"**Range** (5th–95th percentile): {note_name(lo)} – {note_name(hi)} "
            f"({stats['f0_hz_p5']:.0f}–{stats['f0_hz_p95']:.0f} Hz), median {note_name(mid)} "
            f"({stats['f0_hz_p50']:.0f} Hz)")  # fmt: skip


def range_figure(stats: dict) -> Any:
    """Bar chart of voiced frames per MIDI note with the 5/50/95th percentiles marked."""
    from matplotlib.figure import Figure

    hist = stats["f0_semitone_hist"]
    bins, counts = hist["bins"], hist["counts"]
    fig = Figure(figsize=(7, 2.6), layout="constrained")
    ax = fig.add_subplot()
    used = [i for i, c in enumerate(counts) if c > 0]
    if used:  # show the sung notes plus a margin, not all eight octaves
        lo, hi = max(0, used[0] - 3), min(len(bins) - 1, used[-1] + 3)
        bins, counts = bins[lo : hi + 1], counts[lo : hi + 1]
    ax.bar(bins, counts, width=0.85, color="#4c72b0")
    for key, style in (("f0_midi_p5", ":"), ("f0_midi_p50", "-"), ("f0_midi_p95", ":")):
        if stats.get(key) is not None:
            ax.axvline(stats[key], color="#c44e52", linestyle=style, linewidth=1.2)
    ticks = [b for b in bins if b % 12 in (0, 4, 7)] or bins[:: max(1, len(bins) // 8)]
    ax.set_xticks(ticks, [note_name(b) for b in ticks])
    ax.set_ylabel("frames")
    ax.set_title("voiced frames per note (red: 5th / median / 95th percentile)", fontsize=9)
    return fig


def f0_figure(features: dict, chunk: str) -> Any:
    """F0 of one chunk over time: detected (solid, voiced only) and the continuous copy (dashed)."""
    import numpy as np
    from matplotlib.figure import Figure

    from core.config import AUDIO

    f0 = features["f0"]
    t = np.arange(f0.size) * AUDIO.hop_length / AUDIO.sample_rate
    fig = Figure(figsize=(9, 2.8), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(t, features["f0_continuous"], linestyle="--", linewidth=0.8, color="#999999", label="continuous")
    ax.plot(t, np.where(f0 > 0, f0, np.nan), linewidth=1.4, color="#4c72b0", label="F0")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("Hz")
    ax.set_title(chunk, fontsize=9)
    if (f0 > 0).any():
        voiced = f0[f0 > 0]
        ax.set_ylim(voiced.min() / 1.15, voiced.max() * 1.15)
    ax.legend(loc="upper right", fontsize=8)
    return fig
