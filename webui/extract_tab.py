"""Extract tab: compute the features of an experiment's chunks, then look at one chunk's F0 and the singer's range."""

from __future__ import annotations

from typing import Any

import gradio as gr

from webui.common import experiment_choices, gradio_progress, user_errors

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def build() -> None:
    from core.device import DEVICE_CHOICES
    from core.features.extract import ENCODERS, F0_CHOICES

    gr.Markdown(
        "Compute content units, pitch (F0), loudness and mel spectrograms of every chunk of an experiment. "
        "Results are cached: running again only computes what is missing or changed (switching the F0 "
        "method recomputes only F0), and a stopped run continues where it left off."
    )
    with gr.Row():
        with gr.Column(scale=1):
            with gr.Row():
                # No default: choosing an experiment is what shows its earlier results (the change event).
                exp = gr.Dropdown(choices=experiment_choices(), value=None, label="Experiment", elem_id="extract-exp",
                                  allow_custom_value=False, scale=4)  # fmt: skip
                refresh = gr.Button("↻", scale=0, min_width=40, elem_id="extract-refresh")
            f0_method = gr.Dropdown(
                choices=list(F0_CHOICES), value="rmvpe", label="F0 method", elem_id="extract-f0",
                info="rmvpe: best (Models tab → download rmvpe) · fcpe: fast, no download · harvest/parselmouth: CPU classics",
            )  # fmt: skip
            encoder = gr.Dropdown(
                choices=list(ENCODERS), value="contentvec768l12", label="Content encoder", elem_id="extract-encoder",
                info="contentvec768l12 matches the Diffusion-SVC pretrained bases",
            )  # fmt: skip
            device = gr.Dropdown(choices=list(DEVICE_CHOICES), value="auto", label="Device", elem_id="extract-device")
            run = gr.Button("Extract features", variant="primary", elem_id="extract-run")
        with gr.Column(scale=2):
            summary = gr.Markdown(elem_id="extract-summary")
            range_plot = gr.Plot(label="Singer's range (voiced frames per note)", elem_id="extract-range")
    with gr.Row():
        chunk = gr.Dropdown(choices=[], label="Chunk", elem_id="extract-chunk", scale=1)
        f0_plot = gr.Plot(label="F0 of the chosen chunk", elem_id="extract-f0-plot", scale=3)

    refresh.click(lambda: gr.update(choices=experiment_choices()), outputs=exp)
    run.click(_run, inputs=[exp, f0_method, encoder, device], outputs=[summary, range_plot, chunk, f0_plot])
    exp.change(_show_existing, inputs=exp, outputs=[summary, range_plot, chunk, f0_plot])
    chunk.change(_chunk_plot, inputs=[exp, chunk], outputs=f0_plot)


@user_errors
def _run(
    exp: str | None,
    f0_method: str,
    encoder: str,
    device: str,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - gradio injects the tracker through this default
) -> list[Any]:
    from core.errors import SvcoverError
    from core.features.extract import ExtractConfig, list_feature_chunks, load_stats, run_extract

    if not exp:
        raise SvcoverError("choose an experiment first (build one in the Dataset tab)")
    report = run_extract(exp, ExtractConfig(f0_method=f0_method, encoder=encoder, device=device),
                         gradio_progress(progress))  # fmt: skip
    stats = load_stats(exp)
    chunks = list_feature_chunks(exp)
    first = chunks[0] if chunks else None
    return [
        f"### Features of `{exp}`\n\n{report.summary()}\n\n{_range_text(stats)}",
        range_figure(stats),
        gr.update(choices=chunks, value=first),
        _chunk_plot(exp, first) if first else None,
    ]


@user_errors
def _show_existing(exp: str | None) -> list[Any]:
    """Show the stats and plots of an earlier run when an experiment is chosen."""
    from core.errors import SvcoverError
    from core.features.extract import list_feature_chunks, load_stats

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
    from core.features.extract import load_features

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
