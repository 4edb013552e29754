"""Guided first run: a panel above the tabs saying what each stage still needs, and one button that downloads
everything required, then self-tests what it downloaded.

The button submits the same download job as the Models tab (``core.jobs``, stage ``download``), so the download
keeps going through a page reload, a closed browser or a server restart: on every load the panel reattaches to
the newest download job and shows its live progress, then its result and self-test. The panel is filled when the
page loads (not when the app is built), so it reflects the pretrained folder as it is now; it hides itself once
every stage has its models and no download is running.
"""

from __future__ import annotations

import gradio as gr

from core.jobs.model import Job
from webui.common import user_errors
from webui.jobs_view import POLL_SECONDS, latest_job, runner, status_markdown
from webui.models_tab import download_result_markdown

# What each stage needs from pretrained/, in pipeline order: (stage, [registry names], note when nothing is needed).
STAGE_NEEDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Dataset", ()),
    ("Extract", ("contentvec", "rmvpe")),  # content encoder + F0 model (FCPE ships with the app as the alternative)
    ("Train", ("diffusion_svc_base",)),
    ("Convert", ("nsf_hifigan",)),
    ("Cover", ("uvr_vocals",)),
)
NEEDS_TEXT = {
    "contentvec": "content encoder",
    "rmvpe": "F0 model",
    "diffusion_svc_base": "decoder base",
    "nsf_hifigan": "vocoder",
    "uvr_vocals": "vocal separation model",
}


def required_names() -> list[str]:
    """Every registry name some stage needs, in pipeline order."""
    return [name for _, names in STAGE_NEEDS for name in names]


def missing_names() -> list[str]:
    """The required models that are not usable on disk (presence only: checksums are checked on download)."""
    from core.pretrained import REGISTRY, all_status

    usable = {e.name for e, st in zip(REGISTRY, all_status(verify=False), strict=True) if st.usable}
    return [n for n in required_names() if n not in usable]


def _size_text(names: list[str]) -> str:
    from core.pretrained import get

    sizes = [f.size for n in names for f in get(n).files]
    known = sum(s for s in sizes if s)
    if not known:
        return ""
    return f" (at least {known / 1e6:,.0f} MB)" if None in sizes else f" ({known / 1e6:,.0f} MB)"


def panel_markdown(missing: list[str], downloading: bool = False) -> str:
    """The stage table: ready, or which model is missing and what to press (or that a download is running)."""
    lines = ["### First run: what each stage still needs", "", "| stage | needs | status |", "|---|---|---|"]
    for stage, names in STAGE_NEEDS:
        needs = " + ".join(f"{NEEDS_TEXT[n]} (`{n}`)" for n in names) or "nothing"
        gaps = [n for n in names if n in missing]
        status = "ready" if not gaps else "missing: " + ", ".join(f"`{n}`" for n in gaps)
        lines.append(f"| {stage} | {needs} | {status} |")
    if missing and downloading:
        lines += ["", "Downloading (progress below). It keeps going if you reload the page or close the browser; "
                  "this panel shows it again when you come back."]  # fmt: skip
    elif missing:
        lines += ["", f"Press **Download everything needed** to fetch {len(missing)} model(s){_size_text(missing)}, "
                  "checked with sha256 where published and then self-tested; or tick single models in the "
                  "**Models** tab → **Download selected**. Dataset works already; Extract can use the built-in "
                  "FCPE pitch model instead of `rmvpe`."]  # fmt: skip
    else:
        lines += ["", "Every stage has its models. The Models tab can self-test them again at any time."]
    return "\n".join(lines)


def _fetches_only_required(job: Job) -> bool:
    """Whether a download job is the panel's kind (required models only), not say a Models-tab re-download of an
    optional model on a complete install, which must not bring the first-run panel back."""
    try:
        names = runner().store.request(job.id)["request"]["names"]
    except (OSError, KeyError, TypeError, ValueError):  # unreadable record: treat as not ours
        return False
    return set(names) <= set(required_names())


def on_load() -> tuple[dict, str, dict]:
    """Page load: show the panel while something is missing or a first-run download is running (to watch it after
    a reload); the button only when there is something to download and no download job running (one at a time)."""
    missing = missing_names()
    job = latest_job("download")
    running = job is not None and job.active
    return (gr.update(visible=bool(missing) or (running and _fetches_only_required(job))),
            panel_markdown(missing, downloading=running),
            gr.update(visible=bool(missing) and not running))  # fmt: skip


@user_errors
def download_everything() -> str:
    """Submit one download job for every missing required model (it installs each, one failure not stopping the
    others, then self-tests them); the panel's timer shows its progress and result."""
    from core.jobs.stages import DownloadRequest

    todo = missing_names()
    if not todo:
        return "Nothing to download: every stage has its models."
    return status_markdown(runner().submit(DownloadRequest(names=todo)))


def render_job(shown: str) -> list:
    """Timer tick: [shown, panel, table, button, job status, result] for the newest download job.

    ``shown`` is ``<job id>:<state>`` as last rendered by this page ("" after a (re)load). While the job runs only
    its status line changes; when its state changes the table and button follow what is on disk, and when it
    ends the per-model result and the self-test appear. A job that ended before this page was loaded is shown
    only while the panel is needed (something still missing), so a finished first run does not bring it back.
    """
    job = latest_job("download")
    if job is None:
        return [shown] + [gr.skip()] * 5
    key = f"{job.id}:{job.state}"
    if key == shown:  # nothing changed but the progress
        return [key, gr.skip(), gr.skip(), gr.skip(), status_markdown(job) if job.active else gr.skip(), gr.skip()]
    missing = missing_names()
    ours = bool(missing) or _fetches_only_required(job)
    if job.active:
        return [key, gr.update(visible=True) if ours else gr.skip(), panel_markdown(missing, downloading=True),
                gr.update(visible=False), status_markdown(job), ""]  # fmt: skip
    watched = shown.startswith(f"{job.id}:")  # this page saw it run: show how it ended even if nothing is missing
    if not missing and not (watched and ours):
        return [key] + [gr.skip()] * 5
    result = "#### Downloads\n" + download_result_markdown(job)
    return [key, gr.update(visible=True), panel_markdown(missing), gr.update(visible=bool(missing)),
            status_markdown(job), result]  # fmt: skip


def build(demo: gr.Blocks) -> None:
    """The panel (call inside ``demo``'s context, above the tabs); it is filled when the page loads."""
    with gr.Group(visible=False, elem_id="first-run") as panel:
        table = gr.Markdown(elem_id="first-run-needs")
        button = gr.Button("Download everything needed", variant="primary", elem_id="first-run-download",
                           visible=False)  # fmt: skip
        job_status = gr.Markdown(elem_id="first-run-job")
        result = gr.Markdown(elem_id="first-run-result")
    shown = gr.State("")  # reset by a reload, so the first tick reattaches to the running job
    button.click(download_everything, outputs=job_status, api_name="first_run_download")
    demo.load(on_load, outputs=[panel, table, button])
    gr.Timer(POLL_SECONDS).tick(render_job, inputs=shown, outputs=[shown, panel, table, button, job_status, result],
                                show_progress="hidden")  # fmt: skip
