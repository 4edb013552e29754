"""Dataset tab: drop recordings (or .zip archives), slice them into logs/<exp>/, see what came out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from webui.common import gradio_progress, user_errors
from webui.security import refuse_server_paths, server_paths_allowed

N_PLAYERS = 4
HISTOGRAM_BIN_S = 1.0


def build() -> None:
    gr.Markdown(
        "Drop your clean vocal recordings (any audio or video format) or **.zip** archives of them. "
        "They are cut at pauses into 4-15 s chunks in `logs/<experiment>/`. Running again with the same "
        "files changes nothing; adding files adds only their chunks."
    )
    with gr.Row():
        with gr.Column(scale=2):
            files = gr.File(label="Audio files or .zip archives", file_count="multiple", elem_id="dataset-files")
            folders = gr.Textbox(
                label="…or folders / files on this computer (one path per line)"
                + ("" if server_paths_allowed() else " (disabled: the UI is reachable from other machines)"),
                interactive=server_paths_allowed(),
                lines=2,
                placeholder="D:\\vocals\\my_voice",
                elem_id="dataset-folders",
            )
        with gr.Column(scale=1):
            exp = gr.Textbox(label="Experiment name", placeholder="my_voice", elem_id="dataset-exp")
            with gr.Accordion("Settings", open=False):
                threshold = gr.Slider(-80, -10, value=-42, step=1, label="Silence threshold (dB RMS)")
                min_interval = gr.Number(value=400, precision=0, label="Shortest pause to cut at (ms)")
                max_sil_kept = gr.Number(value=500, precision=0, label="Silence kept at a cut (ms)")
                min_length = gr.Number(value=1500, precision=0, label="Shortest slice (ms)")
                min_chunk = gr.Number(value=4.0, label="Shortest chunk (s)")
                max_chunk = gr.Number(value=15.0, label="Longest chunk (s)")
                highpass = gr.Number(value=48.0, label="High-pass cutoff (Hz, 0 = off)")
                normalize = gr.Radio(["loudness", "peak", "none"], value="loudness", label="Level normalisation")
            run = gr.Button("Build dataset", variant="primary", elem_id="dataset-run")
    summary = gr.Markdown(elem_id="dataset-summary")
    histogram = gr.BarPlot(
        x="chunk length (s)", y="chunks", title="Chunk durations", visible=False, elem_id="dataset-histogram"
    )
    with gr.Row():
        players = [gr.Audio(visible=False, interactive=False, type="filepath") for _ in range(N_PLAYERS)]

    run.click(
        _run,
        inputs=[files, folders, exp, threshold, min_interval, max_sil_kept, min_length, min_chunk, max_chunk,
                highpass, normalize],
        outputs=[summary, histogram, *players],
    )  # fmt: skip


@user_errors
def _run(
    files: list[Any] | None,
    folders: str,
    exp: str,
    threshold: float,
    min_interval: float,
    max_sil_kept: float,
    min_length: float,
    min_chunk: float,
    max_chunk: float,
    highpass: float,
    normalize: str,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - gradio injects the tracker through this default
) -> list[Any]:
    from core.dataset import DatasetConfig, NoUsableAudioError, build_dataset
    from core.errors import SvcoverError
    from core.experiment import validate_name
    from core.slicer import SliceSettings

    validate_name((exp or "").strip())
    inputs: list[Path] = []
    labels: list[str] = []
    for f in files or []:
        path = Path(f if isinstance(f, str) else f.name)
        inputs.append(path)
        labels.append(path.name)  # the uploaded file's own name, not gradio's temp path
    refuse_server_paths(folders)
    for line in (folders or "").splitlines():
        if line.strip():
            inputs.append(Path(line.strip().strip('"')))
            labels.append(line.strip().strip('"'))
    if not inputs:
        raise SvcoverError("add some audio files, .zip archives or folder paths first")
    config = DatasetConfig(
        slicing=SliceSettings(
            threshold_db=float(threshold),
            min_length_ms=int(min_length),
            min_interval_ms=int(min_interval),
            max_sil_kept_ms=int(max_sil_kept),
            min_chunk_s=float(min_chunk),
            max_chunk_s=float(max_chunk),
        ),
        highpass_hz=float(highpass),
        normalize=normalize,
    )
    try:
        result = build_dataset(exp.strip(), inputs, config, gradio_progress(progress), labels=labels)
    except NoUsableAudioError as e:
        skipped = "\n".join(f"- skipped **{s.file}**: {s.reason}" for s in e.report.skipped)
        return [f"### Nothing usable\n{e.for_ui()}\n\n{skipped}", gr.update(visible=False)] + [
            gr.update(visible=False, value=None) for _ in range(N_PLAYERS)
        ]
    return [_summary_markdown(result), _histogram(result.durations), *_players(result)]


def _summary_markdown(result: Any) -> str:
    lines = [f"### Dataset `{result.experiment}`: {result.chunks} chunks"]
    body = result.summary_lines()[1:]
    lines += [f"- {line}" for line in body if not line.startswith(("skipped:", "note:"))]
    if result.skipped:
        lines.append("\n**Skipped files**")
        lines += [f"- {s.file}: {s.reason}" for s in result.skipped]
    if result.notes:
        lines.append("\n**Dataset quality notes**")
        lines += [f"- {n}" for n in result.notes]
    return "\n".join(lines)


def _histogram(durations: list[float]) -> Any:
    import math

    import pandas as pd

    if not durations:
        return gr.update(visible=False)
    low = int(min(durations) // HISTOGRAM_BIN_S)
    top = max(low + 1, math.ceil(max(durations) / HISTOGRAM_BIN_S))
    counts = [0] * (top - low)
    for d in durations:
        counts[min(top - 1, int(d // HISTOGRAM_BIN_S)) - low] += 1
    bins = [f"{i * HISTOGRAM_BIN_S:g}-{(i + 1) * HISTOGRAM_BIN_S:g}" for i in range(low, top)]
    frame = pd.DataFrame({"chunk length (s)": bins, "chunks": counts})
    return gr.update(value=frame, visible=True, sort=bins)  # category order, not "10-11" before "4-5"


def _players(result: Any) -> list[Any]:
    from core.experiment import visible_files

    chosen = list(result.new_chunk_files) or visible_files(result.chunk_folder, "*.wav")
    if len(chosen) > N_PLAYERS:  # spread the examples over the whole dataset
        step = len(chosen) / N_PLAYERS
        chosen = [chosen[int(i * step)] for i in range(N_PLAYERS)]
    updates = [gr.update(value=str(p), label=p.name, visible=True) for p in chosen]
    return updates + [gr.update(value=None, visible=False) for _ in range(N_PLAYERS - len(updates))]
