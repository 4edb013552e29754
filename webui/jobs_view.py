"""Jobs in the page: one-line status of a tab's job, and the Jobs view (recent jobs, Stop, Retry).

The tabs never run a stage themselves: they submit a request to the runner (core.jobs) and render the
job's state on a timer, so a reload, a closed browser or a restarted server loses nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gradio as gr

from core.jobs.model import Job, JobState
from core.jobs.runner import default_runner
from webui.common import user_errors

POLL_SECONDS = 1.0
# Plain symbols (not colour emoji): they render with the fonts every system has.
STATE_LABELS = {
    JobState.QUEUED: "… Queued",
    JobState.RUNNING: "▶ Running",
    JobState.DONE: "✔ Done",
    JobState.FAILED: "✖ Failed",
    JobState.STOPPED: "■ Stopped",
}
HEADERS = ["started", "job", "state", "progress", "duration", "reason / result", "id"]


def runner() -> Any:
    return default_runner()


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    return f"{h} h {rest // 60:02d} min" if h else f"{rest // 60} min {rest % 60:02d} s" if rest >= 60 else f"{rest} s"


def progress_bar(fraction: float, width: int = 20) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "▰" * filled + "▱" * (width - filled)


def status_markdown(job: Job | None, idle: str = "") -> str:
    """One block of Markdown: state (distinct for done / failed / stopped), progress, what it is doing, why it ended."""
    if job is None:
        return idle
    label = STATE_LABELS[job.state]
    if job.active:
        stopping = " (stop requested)" if runner().store.stop_requested(job.id) else ""
        return (f"**{label}{stopping}** — {job.title}\n\n`{progress_bar(job.progress)}` **{job.progress:.0%}** · "
                f"{job.message or 'starting'} · {duration_text(job.duration)}")  # fmt: skip
    if job.state == JobState.DONE:
        return f"**{label}** — {job.title} in {duration_text(job.duration)}"
    return f"**{label}** — {job.title}: {job.reason or 'no reason recorded'}"


def latest_job(stage: str, experiment: str | None = None) -> Job | None:
    return runner().latest(experiment, stage)


def newest_job(stage: str, idle: str = "") -> tuple[Job | None, str, str]:
    """The newest ``stage`` job, its status line (``idle`` when there is none) and its key ``<id>:<state>``: a tab's
    timer re-renders the job's result only when the key changes."""
    job = latest_job(stage)
    return job, status_markdown(job, idle=idle), f"{job.id}:{job.state}" if job else ""


@user_errors
def stop_latest(stage: str, idle: str) -> str:
    """The Stop button of a tab: stop that stage's newest job if it is still running (``idle`` otherwise)."""
    job = latest_job(stage)
    if job is None or not job.active:
        return status_markdown(job, idle=idle)
    return status_markdown(runner().stop(job.id))


def signature(job: Job | None) -> str:
    """Changes whenever what the page shows of ``job`` changes (skip re-rendering players otherwise)."""
    if job is None:
        return ""
    return f"{job.id}:{job.state}:{job.progress:.3f}:{job.message}:{int(job.duration or 0)}"


def log_tail(job_id: str, n: int = 15) -> str:
    path = runner().store.log_path(job_id)
    try:
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - 8000))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line.split("\r")[-1] for line in text.splitlines()]  # tqdm redraws with \r
    return "\n".join(lines[-n:])


# ------------------------------------------------------------------------------------------ Jobs view
def _rows() -> list[list[Any]]:
    rows = []
    for job in runner().jobs(limit=30):
        if job.state == JobState.DONE:
            what = ", ".join(p.replace("\\", "/").rsplit("/", 1)[-1] for p in job.outputs[:2])
            what += f" (+{len(job.outputs) - 2})" if len(job.outputs) > 2 else ""
        else:
            what = job.reason or job.message
        rows.append([time.strftime("%m-%d %H:%M:%S", time.localtime(job.created)), job.title, STATE_LABELS[job.state],
                     f"{job.progress:.0%}", duration_text(job.duration), what, job.id])  # fmt: skip
    return rows


def _choices() -> list[tuple[str, str]]:
    return [(f"{j.title} · {j.state} · {j.id}", j.id) for j in runner().jobs(limit=30)]


def _refresh(selected: str | None) -> list[Any]:
    choices = _choices()
    ids = [c[1] for c in choices]
    value = selected if selected in ids else (ids[0] if ids else None)
    return [_rows(), gr.update(choices=choices, value=value), log_tail(value) if value else ""]


def _job_button(act: Callable[[Any, str], Job], say: Callable[[Job], str]) -> Callable[[str | None], str]:
    """The click handler of a Jobs-view button: ``act(runner, job id)`` on the picked job, then ``say`` what
    became of the job it returns."""

    @user_errors
    def on_click(job_id: str | None) -> str:
        if not job_id:
            return "Choose a job first."
        return say(act(runner(), job_id))

    return on_click


def _stop_said(job: Job) -> str:
    if not job.active:
        return f"{job.title} is already {job.state}."
    return f"Stop requested for {job.title}: it stops at its next progress report and keeps finished work."


_stop = _job_button(lambda jobs, job_id: jobs.stop(job_id), _stop_said)
_kill = _job_button(lambda jobs, job_id: jobs.kill(job_id), lambda job: f"{job.title}: {job.state}.")
_retry = _job_button(lambda jobs, job_id: jobs.retry(job_id), lambda job: f"Started again as job {job.id}.")


def _pick_row(evt: gr.SelectData) -> Any:
    row = evt.row_value if evt is not None else None
    return gr.update(value=row[-1]) if row else gr.skip()


def build() -> None:
    gr.Markdown(
        "Every long operation runs as a **job** in its own process: reloading or closing this page does not stop "
        "it, and the tabs show its progress again when you come back. Jobs and their logs are kept in "
        "`logs/.jobs/`. **Stop** lets a job finish its current step and keep what it has done (training saves a "
        "checkpoint); **End now** ends it at once; **Retry** runs the same request again."
    )
    table = gr.Dataframe(headers=HEADERS, value=_rows, interactive=False, wrap=True, label="Recent jobs (newest first)",
                         elem_id="jobs-table")  # fmt: skip
    with gr.Row():
        picked = gr.Dropdown(choices=[], label="Job", elem_id="jobs-pick", scale=4)
        stop = gr.Button("Stop", variant="stop", elem_id="jobs-stop", scale=1)
        kill = gr.Button("End now", elem_id="jobs-kill", scale=1)
        retry = gr.Button("Retry", elem_id="jobs-retry", scale=1)
    message = gr.Markdown(elem_id="jobs-message")
    log = gr.Textbox(label="Log of the chosen job (last lines)", lines=8, max_lines=15, interactive=False,
                     elem_id="jobs-log")  # fmt: skip
    timer = gr.Timer(2.0)
    outputs = [table, picked, log]
    timer.tick(_refresh, inputs=picked, outputs=outputs, show_progress="hidden")
    table.select(_pick_row, outputs=picked)
    picked.change(lambda j: log_tail(j) if j else "", inputs=picked, outputs=log, show_progress="hidden")
    stop.click(_stop, inputs=picked, outputs=message)
    kill.click(_kill, inputs=picked, outputs=message)
    retry.click(_retry, inputs=picked, outputs=message)
