"""Models tab: pretrained files (status, download), voice models (import/export), environment doctor.

Only widgets and events; the work is done by core.pretrained, core.voicemodel and core.doctor
(imported inside the handlers so that building the page never loads torch).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import gradio as gr

from core.jobs.model import Job, JobState
from webui.common import (
    clean_name_field,
    experiment_choices,
    experiment_dropdown,
    fresh_experiment_choices,
    gradio_progress,
    on_page_load,
    selftest_markdown,
    user_errors,
)
from webui.jobs_view import POLL_SECONDS, newest_job, runner, status_markdown

STATUS_HEADERS = ["name", "state", "detail", "what", "licence", "checksum source"]


def _status_rows(verify: bool) -> list[list[str]]:
    from core.pretrained import REGISTRY, all_status

    rows = []
    for entry, st in zip(REGISTRY, all_status(verify=verify), strict=True):
        pinned = any(f.sha256 or f.md5_tail for f in entry.files)
        source = "verified" if entry.verified else ("pinned, unverified" if pinned else "none published")
        rows.append([entry.name, st.state, st.detail, entry.title, entry.licence, source])
    return rows


def _names() -> list[str]:
    from core.pretrained import REGISTRY

    return [e.name for e in REGISTRY]


@user_errors
def refresh_status(verify: bool = False) -> list[list[str]]:
    return _status_rows(verify)


@user_errors
def download(names: list[str] | None) -> str:
    """Submit the download of the chosen registry entries as one job (it keeps going if the page is closed)."""
    from core.jobs.stages import DownloadRequest
    from core.pretrained import get

    if not names:
        raise gr.Error("choose at least one model to download", print_exception=False)
    request = DownloadRequest(names=[get(n).name for n in names])  # validates: only registry names reach the job
    return status_markdown(runner().submit(request))


def download_result_markdown(job: Job) -> str:
    """An ended download job as Markdown: one line per file, what is still missing, the self-test.
    Shared with the first-run panel, which submits the same job."""
    from core.pretrained import missing_report

    lines = job.details.get("lines") or ([] if job.state == JobState.DONE else (job.reason or "").split("; "))
    text = "\n".join(f"- **{name}**:{rest}" for name, _, rest in (line.partition(":") for line in lines))
    if job.details.get("failed") or job.state == JobState.FAILED:
        text += "\n\nStill missing (download by hand if you are offline):\n```\n" + missing_report(for_ui=True) + "\n```"
    if job.details.get("selftest"):  # every download is checked by running it, not only by its checksum
        text += "\n\n" + selftest_markdown([SimpleNamespace(**c) for c in job.details["selftest"]])
    return text


def render_download(shown: str) -> list[Any]:
    """The newest download job: progress every tick; per-file results and a fresh status table when it ends."""
    job, status, key = newest_job("download")
    if key == shown or job is None or job.active:
        return [key, status, gr.skip(), gr.skip()]
    text = download_result_markdown(job)
    return [key, status, _status_rows(True), text]  # cheap: freshly verified downloads are in the checksum cache


@user_errors
def self_test(progress: gr.Progress = gr.Progress()) -> str:  # noqa: B008 - gradio injects the tracker
    """Run every installed model on a known input (core.selftest) and list the results."""
    from core.selftest import run_self_test

    return selftest_markdown(run_self_test(None, gradio_progress(progress)))


@user_errors
def run_doctor() -> tuple[list[list[str]], str]:
    from core.doctor import FAIL, WARN
    from core.doctor import run_doctor as doctor

    checks = doctor()
    rows = [[c.status, c.name, c.ui_detail] for c in checks]
    fails = sum(c.status == FAIL for c in checks)
    warns = sum(c.status == WARN for c in checks)
    return rows, f"{fails} problem(s), {warns} warning(s)"


@user_errors
def import_model(file_path: str | None, name: str) -> str:
    from core.experiment import validate_name
    from core.voicemodel import card_summary, import_voice_model, install_voice_model

    if not file_path:
        raise gr.Error("upload a voice model (.zip, .safetensors, .pt, .pth or .ckpt) first", print_exception=False)
    from core.errors import CheckpointError

    validate_name(name.strip())
    try:
        folder = install_voice_model(file_path, name.strip())
    except CheckpointError as e:  # kept on the page (not a toast): the user should see why a file was refused
        return f"**Not imported.** {e}"
    card = import_voice_model(folder).card
    return f"Imported as **{name.strip()}** → `{folder}` ({card_summary(card)})"


@user_errors
def export_model(name: str | None) -> tuple[str | None, str]:
    from core.voicemodel import card_summary, export_experiment, import_voice_model, pack_zip

    if not name:
        raise gr.Error("choose an experiment to export", print_exception=False)
    folder = export_experiment(name)
    archive = pack_zip(folder, folder / f"{name}.zip")
    card = import_voice_model(folder).card
    return str(archive), f"Exported `{archive}` ({card_summary(card)})"


def build() -> None:
    gr.Markdown(
        "### Pretrained files\nEvery file is checked (sha256, size, model key or file type) before it is put in "
        "place. Offline? The table and the doctor list each missing file, where it goes and where to get it. "
        "Mirror: set `SVCOVER_MIRROR`; proxies: `HTTPS_PROXY`."
    )
    table = gr.Dataframe(headers=STATUS_HEADERS, value=lambda: _status_rows(False), interactive=False, wrap=True,
                         label="status", elem_id="models-status")
    with gr.Row():
        refresh_btn = gr.Button("Refresh")
        verify_btn = gr.Button("Verify checksums")
    with gr.Row():
        choose = gr.CheckboxGroup(choices=_names(), label="download", scale=3)
        download_btn = gr.Button("Download selected", variant="primary", scale=1)
    download_job = gr.Markdown(elem_id="models-download-job")
    download_log = gr.Markdown(elem_id="models-download-log")
    with gr.Row():
        selftest_btn = gr.Button("Self-test installed models", elem_id="models-selftest", scale=1)
        gr.Markdown("Runs each installed model on a known input and checks its output (about a minute on a CPU); "
                    "runs by itself after every download. Command line: `python -m core doctor --self-test`.")  # fmt: skip
    selftest_msg = gr.Markdown(elem_id="models-selftest-msg")
    selftest_btn.click(self_test, outputs=selftest_msg, api_name="selftest")
    shown = gr.State("")
    refresh_btn.click(lambda: refresh_status(False), outputs=table, api_name="pretrained_status")
    verify_btn.click(lambda: refresh_status(True), outputs=table, api_name="pretrained_verify")
    download_btn.click(download, inputs=choose, outputs=download_job, api_name="pretrained_download")
    gr.Timer(POLL_SECONDS).tick(render_download, inputs=shown, outputs=[shown, download_job, table, download_log],
                                show_progress="hidden")  # fmt: skip

    gr.Markdown(
        "### Voice models\nShareable format: `model.safetensors` + `model_card.json` (no code inside). "
        "Foreign `.pt`/`.pth`/`.ckpt` files are opened with the safe loader only: a file that tries to run "
        "code is refused."
    )
    with gr.Row():
        with gr.Column():
            upload = gr.File(label="voice model to import", file_types=[".zip", ".safetensors", ".pt", ".pth", ".ckpt"],
                             type="filepath", elem_id="models-import-file")
            import_name = gr.Textbox(label="save as experiment", placeholder="my_voice (letters, digits, _ and -)",
                                     elem_id="models-import-name")
            import_btn = gr.Button("Import", elem_id="models-import")
            import_msg = gr.Markdown(elem_id="models-import-msg")
        with gr.Column():
            export_exp = gr.Dropdown(choices=experiment_choices(), value=None, label="experiment to export",
                                     allow_custom_value=False, elem_id="models-export-exp")  # fmt: skip
            export_btn = gr.Button("Export")
            export_file = gr.File(label="shareable zip", interactive=False)
            export_msg = gr.Markdown()
    import_name.blur(clean_name_field, inputs=import_name, outputs=import_name)
    import_btn.click(import_model, inputs=[upload, import_name], outputs=import_msg, api_name="voice_import")
    export_btn.click(export_model, inputs=export_exp, outputs=[export_file, export_msg], api_name="voice_export")
    export_exp.focus(fresh_experiment_choices, outputs=export_exp)
    on_page_load(experiment_dropdown, inputs=export_exp, outputs=export_exp)  # the most recently trained one

    gr.Markdown("### Environment doctor")
    doctor_btn = gr.Button("Check environment", elem_id="models-doctor")
    doctor_table = gr.Dataframe(headers=["status", "check", "detail"], interactive=False, wrap=True,
                                elem_id="models-doctor-table")
    doctor_msg = gr.Markdown(elem_id="models-doctor-msg")
    doctor_btn.click(run_doctor, outputs=[doctor_table, doctor_msg], api_name="doctor")

