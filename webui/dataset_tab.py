"""Dataset tab: drop recordings (or .zip archives), slice them into logs/<exp>/ (as a job), see what came out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from core.dataset import NORMALIZE_MODES, DatasetConfig
from core.jobs.model import JobState
from core.slicer import SliceSettings
from webui.common import checked_name, clean_name_field, user_errors
from webui.jobs_view import POLL_SECONDS, newest_job, runner, status_markdown
from webui.security import refuse_server_paths, server_paths_allowed

N_PLAYERS = 4
HISTOGRAM_BIN_S = 1.0


def build() -> None:
    defaults = DatasetConfig()
    slicing = defaults.slicing
    gr.Markdown(
        "Drop your clean vocal recordings (any audio or video format) or **.zip** archives of them. "
        f"They are cut at pauses into {slicing.min_chunk_s:g}-{slicing.max_chunk_s:g} s chunks in "
        "`logs/<experiment>/`. Running again with the same files changes nothing; adding files adds only their chunks."
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
                threshold = gr.Slider(-80, -10, value=slicing.threshold_db, step=1, label="Silence threshold (dB RMS)")
                min_interval = gr.Number(value=slicing.min_interval_ms, precision=0, label="Shortest pause to cut at (ms)")
                max_sil_kept = gr.Number(value=slicing.max_sil_kept_ms, precision=0, label="Silence kept at a cut (ms)")
                min_length = gr.Number(value=slicing.min_length_ms, precision=0, label="Shortest slice (ms)")
                min_chunk = gr.Number(value=slicing.min_chunk_s, label="Shortest chunk (s)")
                max_chunk = gr.Number(value=slicing.max_chunk_s, label="Longest chunk (s)")
                highpass = gr.Number(value=defaults.highpass_hz, label="High-pass cutoff (Hz, 0 = off)")
                normalize = gr.Radio(list(NORMALIZE_MODES), value=defaults.normalize, label="Level normalisation")
            run = gr.Button("Build dataset", variant="primary", elem_id="dataset-run")
    job_status = gr.Markdown(elem_id="dataset-job")
    summary = gr.Markdown(elem_id="dataset-summary")
    histogram = gr.Plot(label="Chunk durations", visible=False, elem_id="dataset-histogram")
    with gr.Row():
        players = [gr.Audio(visible=False, interactive=False, type="filepath") for _ in range(N_PLAYERS)]

    shown = gr.State("")
    timer = gr.Timer(POLL_SECONDS)
    exp.blur(clean_name_field, inputs=exp, outputs=exp)
    run.click(
        _submit,
        inputs=[files, folders, exp, threshold, min_interval, max_sil_kept, min_length, min_chunk, max_chunk,
                highpass, normalize],
        outputs=job_status,
    )  # fmt: skip
    timer.tick(render, inputs=shown, outputs=[shown, job_status, summary, histogram, *players], show_progress="hidden")


def dataset_request(files: list[Any] | None, folders: str, exp: str, threshold: float, min_interval: float,
                    max_sil_kept: float, min_length: float, min_chunk: float, max_chunk: float, highpass: float,
                    normalize: str) -> Any:  # fmt: skip
    """The Build dataset button's job request: inputs, their names as the user knows them, the DatasetConfig."""
    from core.errors import SvcoverError
    from core.jobs.stages import DatasetRequest

    name = checked_name(exp)
    inputs: list[str] = []
    labels: list[str] = []
    for f in files or []:
        path = Path(f if isinstance(f, str) else f.name)
        inputs.append(str(path))
        labels.append(path.name)  # the uploaded file's own name, not gradio's temp path
    refuse_server_paths(folders)
    for line in (folders or "").splitlines():
        if line.strip():
            inputs.append(line.strip().strip('"'))
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
    config.validate()
    return DatasetRequest(exp=name, inputs=inputs, labels=labels, config=config)


@user_errors
def _submit(*form: Any) -> str:
    return status_markdown(runner().submit(dataset_request(*form)))


def render(shown: str) -> list[Any]:
    """The newest dataset job: progress every tick; its summary, histogram and players once it ends."""
    job, status, key = newest_job("dataset")
    if key == shown:
        return [gr.skip(), status, *[gr.skip()] * (2 + N_PLAYERS)]
    hidden = [gr.update(visible=False, value=None) for _ in range(N_PLAYERS)]
    if job is None or job.active:
        return [key, status, "", gr.update(visible=False), *hidden]
    if job.state != JobState.DONE:  # the status line above carries the reason (once)
        return [key, status, "", gr.update(visible=False), *hidden]
    d = job.details
    return [key, status, summary_markdown(job.experiment or "", d), histogram(d.get("durations") or []),
            *players(job.experiment or "", d)]  # fmt: skip


def summary_markdown(exp: str, d: dict) -> str:
    lines = [f"### Dataset `{exp}`: {d.get('chunks', 0)} chunks"]
    body = (d.get("summary_lines") or [])[1:]
    lines += [f"- {line}" for line in body if not line.startswith(("skipped:", "note:"))]
    if d.get("skipped"):
        lines.append("\n**Skipped files**")
        lines += [f"- {s['file']}: {s['reason']}" for s in d["skipped"]]
    if d.get("notes"):
        lines.append("\n**Dataset quality notes**")
        lines += [f"- ⚠️ {n}" for n in d["notes"]]
    return "\n".join(lines)


def histogram(durations: list[float]) -> Any:
    """Chunks per 1-second bin (whole counts on the y-axis)."""
    import math

    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    if not durations:
        return gr.update(visible=False)
    low = int(min(durations) // HISTOGRAM_BIN_S)
    top = max(low + 1, math.ceil(max(durations) / HISTOGRAM_BIN_S))
    counts = [0] * (top - low)
    for d in durations:
        counts[min(top - 1, int(d // HISTOGRAM_BIN_S)) - low] += 1
    bins = [f"{i * HISTOGRAM_BIN_S:g}-{(i + 1) * HISTOGRAM_BIN_S:g}" for i in range(low, top)]
    fig = Figure(figsize=(7, 2.4), layout="constrained")
    ax = fig.add_subplot()
    ax.bar(bins, counts, color="#4c72b0")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("chunk length (s)")
    ax.set_ylabel("chunks")
    ax.set_title("Chunk durations", fontsize=9)
    return gr.update(value=fig, visible=True)


def players(exp: str, d: dict) -> list[Any]:
    """Up to N_PLAYERS chunks spread over the new ones, labelled by the recording they come from."""
    from core.experiment import Experiment, visible_files

    experiment = Experiment.open(exp)
    chosen = [Path(p) for p in d.get("new_chunk_files") or []] or visible_files(experiment.gt_wavs, "*.wav")
    chosen = [p for p in chosen if p.is_file()]
    if len(chosen) > N_PLAYERS:  # spread the examples over the whole dataset
        step = len(chosen) / N_PLAYERS
        chosen = [chosen[int(i * step)] for i in range(N_PLAYERS)]
    sources = _chunk_sources(experiment)
    updates = [gr.update(value=str(p), label=sources.get(p.stem, p.name), visible=True) for p in chosen]
    return updates + [gr.update(value=None, visible=False) for _ in range(N_PLAYERS - len(updates))]


def _chunk_sources(experiment: Any) -> dict[str, str]:
    """chunk name -> "<source file> @ m:ss" from the dataset manifest."""
    import json

    try:
        manifest = json.loads(experiment.manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    out = {}
    for c in manifest.get("chunks") or []:
        if isinstance(c, dict) and "name" in c:
            offset = float(c.get("offset_s") or 0.0)
            source = str(c.get("source", "")).replace("\\", "/").rsplit("/", 1)[-1]
            out[Path(c["name"]).stem] = f"{source} @ {int(offset // 60)}:{int(offset % 60):02d}"
    return out
