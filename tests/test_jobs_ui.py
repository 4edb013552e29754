"""The page side of jobs without a browser: state lines, warnings in UI words, outputs history, offered names."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from core.jobs.model import Job, JobState


def test_done_failed_and_stopped_read_differently(tmp_logs: Path) -> None:
    from webui.jobs_view import status_markdown

    base = {"id": "x", "stage": "train", "experiment": "v", "title": "training of v", "started": time.time() - 75}
    done = status_markdown(Job(**base, state=JobState.DONE, finished=time.time()))
    failed = status_markdown(Job(**base, state=JobState.FAILED, reason="v: no dataset yet", finished=time.time()))
    stopped = status_markdown(Job(**base, state=JobState.STOPPED, reason="stopped at step 40 of 100", finished=time.time()))
    assert "Done" in done and "1 min 15 s" in done
    assert "Failed" in failed and "no dataset yet" in failed
    assert "Stopped" in stopped and "step 40 of 100" in stopped
    assert len({done.split("**")[1], failed.split("**")[1], stopped.split("**")[1]}) == 3
    running = status_markdown(Job(**base, state=JobState.RUNNING, progress=0.42, message="step 42/100"))
    assert "42%" in running and "step 42/100" in running and "▰" in running


def test_key_range_warning_in_page_words_with_a_clamped_suggestion() -> None:
    from core.convert import range_warning
    from webui.outputs_view import page_warning, suggested_key

    stats = {"f0_hz_p5": 114.0, "f0_hz_p50": 180.0, "f0_hz_p95": 278.0}
    source = np.full(200, 1052.0)  # a whistle register melody for a baritone model: the example
    warning = range_warning(source, 0.0, stats)
    assert warning is not None and "--key" not in warning
    shown = page_warning(warning, (-12, 12))
    assert "-12" in shown and "slider" in shown and "-31" in shown and "--key" not in shown
    assert suggested_key([warning], (-12, 12)) == -12
    near = range_warning(np.full(200, 300.0), 0.0, stats)
    assert suggested_key([near], (-12, 12)) == -9 and "Use suggested key" in page_warning(near, (-12, 12))
    assert suggested_key(["the input is silent: the output is silence"], (-12, 12)) is None


def test_outputs_history_newest_first_without_work_files(tmp_logs: Path) -> None:
    from webui.outputs_view import history_files, history_html

    outputs = tmp_logs / "voice" / "outputs"
    (outputs / "cover_work").mkdir(parents=True)
    (outputs / "cover_work" / "vocals_voice_key0.wav").write_bytes(b"x")
    for i, name in enumerate(["take_voice_key0.wav", "song_voice_key0_cover_20261201-0501.mp3", "take_voice_key0-2.wav"]):
        (outputs / name).write_bytes(b"x" * (i + 1))
        os.utime(outputs / name, (1_000_000 + i, 1_000_000 + i))
    (outputs / ".tmp-take.wav").write_bytes(b"partial")
    assert [p.name for p in history_files("voice")] == ["take_voice_key0-2.wav", "song_voice_key0_cover_20261201-0501.mp3",
                                                        "take_voice_key0.wav"]  # fmt: skip
    page = history_html("voice")
    assert page.count("<audio") == 3 and page.count("download=") == 3 and "cover_work" not in page
    assert page.index("take_voice_key0-2.wav") < page.index("take_voice_key0.wav")


def test_results_never_replace_earlier_ones(tmp_path: Path) -> None:
    from core.fsutil import unique_path

    first = tmp_path / "take_voice_key0.wav"
    assert unique_path(first) == first
    first.write_bytes(b"1")
    second = unique_path(first)
    second.write_bytes(b"2")
    assert second.name == "take_voice_key0-2.wav" and unique_path(first).name == "take_voice_key0-3.wav"


@pytest.mark.parametrize(("typed", "offered"), [("my voice", "my_voice"), ("CON", "CON_1"), ("com1", "com1_1"),
                                                ("../x", "x"), ("Émilie", "Emilie"), ("ok-1", "ok-1")])  # fmt: skip
def test_names_are_offered_cleaned(typed: str, offered: str, tmp_logs: Path) -> None:
    from core.errors import SvcoverError
    from webui.common import checked_name, offered_name

    assert offered_name(typed) == offered
    if typed == offered:
        assert checked_name(typed) == typed
    else:
        with pytest.raises(SvcoverError, match=f"use '{offered}'"):
            checked_name(typed)


def test_recently_trained_experiment_is_preselected(tmp_logs: Path) -> None:
    from webui.common import experiment_dropdown, recently_trained

    for name, mtime in (("CON_1", None), ("alto", 2_000_000), ("bass", 1_000_000)):
        (tmp_logs / name / "checkpoints").mkdir(parents=True)
        if mtime:
            ckpt = tmp_logs / name / "checkpoints" / "best.pt"
            ckpt.write_bytes(b"x")
            os.utime(ckpt, (mtime, mtime))
    assert recently_trained() == "alto"
    update = experiment_dropdown(None)
    assert update["value"] == "alto" and update["choices"] == ["CON_1", "alto", "bass"]
    assert experiment_dropdown("bass")["value"] == "bass"  # a choice already made is kept


def test_jobs_view_buttons_say_what_became_of_the_picked_job(tmp_logs: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Stop, End now and Retry of the Jobs view on a real (test-stage) job in its own process."""
    import gradio as gr

    from tests.job_stages import WaitRequest
    from webui import jobs_view

    monkeypatch.setenv("SVCOVER_TEST_JOB_STAGES", "tests.job_stages")
    jobs = jobs_view.runner()
    assert jobs_view._stop(None) == jobs_view._kill("") == jobs_view._retry(None) == "Choose a job first."

    def running(job_id: str) -> str:
        deadline = time.monotonic() + 60
        while jobs.status(job_id).state != JobState.RUNNING:
            assert time.monotonic() < deadline, jobs.status(job_id)
            time.sleep(0.05)
        return job_id

    job = jobs.submit(WaitRequest(exp="a", seconds=30, output=str(tmp_path / "out.txt")))
    running(job.id)
    with pytest.raises(gr.Error, match="wait of a is still running; stop it before retrying"):
        jobs_view._retry(job.id)
    assert jobs_view._stop(job.id) == (
        "Stop requested for wait of a: it stops at its next progress report and keeps finished work."
    )
    assert jobs.wait(job.id, timeout=30).state == JobState.STOPPED
    assert jobs_view._stop(job.id) == "wait of a is already stopped."
    said = jobs_view._retry(job.id)
    retried = jobs.jobs(limit=1)[0]  # newest first
    assert retried.retry_of == job.id and said == f"Started again as job {retried.id}."
    assert jobs_view._kill(running(retried.id)) == "wait of a: stopped."
    assert jobs.status(retried.id).state == JobState.STOPPED
