"""core.jobs: states, persistence across runner instances, one writer per store, stop, retry, a killed worker.

Most tests use the test-only ``wait`` stage (tests/job_stages.py) run by the real worker process; the real
Dataset and Extract stages are run as jobs too (done with its chunks, failed with the stage's reason).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest

from core.jobs.model import Job, JobConflictError, JobState
from core.jobs.runner import LocalProcessRunner
from core.jobs.store import JobStore
from tests.conftest import REAL
from tests.job_stages import WaitRequest


@pytest.fixture
def runner(tmp_logs: Path, monkeypatch: pytest.MonkeyPatch) -> LocalProcessRunner:
    monkeypatch.setenv("SVCOVER_TEST_JOB_STAGES", "tests.job_stages")
    return LocalProcessRunner(JobStore())


def _wait_for(runner: LocalProcessRunner, job_id: str, state: JobState, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while runner.status(job_id).state != state:
        assert time.monotonic() < deadline, f"job never reached {state}: {runner.status(job_id)}"
        time.sleep(0.05)


def test_wait_job_runs_to_done_and_survives_a_new_runner(runner: LocalProcessRunner, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    job = runner.submit(WaitRequest(exp="a", seconds=1.0, output=str(out)))
    assert job.state == JobState.QUEUED
    _wait_for(runner, job.id, JobState.RUNNING)

    restarted = LocalProcessRunner(JobStore())  # a server restart: nothing but the files on disk
    seen = restarted.status(job.id)
    assert seen.state == JobState.RUNNING and seen.pid and seen.pid != os.getpid()
    final = restarted.wait(job.id, timeout=60)
    assert final.state == JobState.DONE and final.progress == 1.0
    assert final.outputs == [str(out)] and out.read_text() == "done"
    assert final.warnings == ["a warning from the stage"]
    kinds = [e["kind"] for e in restarted.events(job.id)]
    assert kinds[0] == "state" and "progress" in kinds and "warning" in kinds and kinds[-1] == "state"
    assert [e["state"] for e in restarted.events(job.id) if e["kind"] == "state"] == ["queued", "running", "done"]
    fractions = [e["fraction"] for e in restarted.events(job.id) if e["kind"] == "progress"]
    assert fractions == sorted(fractions) and len(fractions) >= 2
    assert [j.id for j in LocalProcessRunner(JobStore()).jobs(experiment="a")] == [job.id]


def test_second_writer_of_one_feature_store_is_refused(runner: LocalProcessRunner, tmp_path: Path) -> None:
    from core.features.extract import ExtractConfig
    from core.jobs.stages import ExtractRequest

    first = runner.submit(WaitRequest(exp="a", seconds=30, output=str(tmp_path / "x")))
    with pytest.raises(JobConflictError, match=r"wait of a is already (queued|running).*Jobs view"):
        runner.submit(ExtractRequest(exp="a", config=ExtractConfig(f0_method="fcpe")))
    with pytest.raises(JobConflictError):  # also from another runner (another server process)
        LocalProcessRunner(JobStore()).submit(WaitRequest(exp="a", seconds=1, output=str(tmp_path / "y")))
    other = runner.submit(WaitRequest(exp="b", seconds=0.1, output=str(tmp_path / "b")))  # another experiment: fine
    assert runner.wait(other.id).state == JobState.DONE
    assert len(runner.jobs(experiment="a")) == 1  # the refused requests left no job behind
    runner.stop(first.id)
    assert runner.wait(first.id).state == JobState.STOPPED
    again = runner.submit(WaitRequest(exp="a", seconds=0.1, output=str(tmp_path / "z")))  # the lock was released
    assert runner.wait(again.id).state == JobState.DONE


def test_stop_is_clean_and_retry_reruns_the_same_request(runner: LocalProcessRunner, tmp_path: Path) -> None:
    upload = tmp_path / "upload.txt"
    upload.write_text("uploaded words")
    out = tmp_path / "out.txt"
    job = runner.submit(WaitRequest(exp="a", seconds=30, output=str(out), upload=str(upload)))
    _wait_for(runner, job.id, JobState.RUNNING)
    time.sleep(0.5)
    runner.stop(job.id)
    stopped = runner.wait(job.id, timeout=30)
    assert stopped.state == JobState.STOPPED and "stopped on request" in stopped.reason
    assert 0 < stopped.progress < 0.5 and not out.exists()

    upload.unlink()  # the browser's temporary upload is gone; the job kept its own copy
    retried = runner.retry(job.id)
    assert retried.retry_of == job.id and retried.id != job.id
    assert runner.request(retried.id).seconds == 30 and runner.request(retried.id).output == str(out)
    runner.stop(retried.id)
    assert runner.wait(retried.id, timeout=30).state == JobState.STOPPED


def test_failed_job_has_the_stage_reason_and_retry_succeeds(runner: LocalProcessRunner, tmp_path: Path) -> None:
    needed = tmp_path / "needed.txt"
    job = runner.submit(WaitRequest(exp="a", seconds=0.1, output=str(tmp_path / "o"), require_file=str(needed)))
    failed = runner.wait(job.id)
    assert failed.state == JobState.FAILED and failed.reason == f"{needed}: file not found"
    needed.write_text("now here")
    done = runner.wait(runner.retry(job.id).id)
    assert done.state == JobState.DONE and done.retry_of == job.id


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX; on Windows TerminateProcess has the same effect")
def test_killed_worker_shows_failed_with_a_reason(runner: LocalProcessRunner, tmp_path: Path) -> None:
    job = runner.submit(WaitRequest(exp="a", seconds=60, output=str(tmp_path / "o")))
    _wait_for(runner, job.id, JobState.RUNNING)
    time.sleep(0.5)
    os.kill(runner.status(job.id).pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while (seen := LocalProcessRunner(JobStore()).status(job.id)).state == JobState.RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert seen.state == JobState.FAILED
    assert "ended without reporting" in seen.reason and "killed" in seen.reason and "waited" in seen.reason
    assert runner.status(job.id).state == JobState.FAILED  # persisted
    after = runner.submit(WaitRequest(exp="a", seconds=0.1, output=str(tmp_path / "p")))  # its locks were freed
    assert runner.wait(after.id).state == JobState.DONE


def test_real_dataset_stage_as_a_job(runner: LocalProcessRunner, tmp_path: Path) -> None:
    from core.jobs.stages import DatasetRequest

    upload = tmp_path / "gradio" / "take.wav"
    upload.parent.mkdir()
    shutil.copy(REAL / "singing" / "vocadito_1.wav", upload)
    job = runner.wait(runner.submit(DatasetRequest(exp="voice", inputs=[str(upload)], labels=["my take.wav"])).id)
    assert job.state == JobState.DONE, job.reason
    chunks = [Path(p) for p in job.outputs]
    assert len(chunks) >= 2 and all(p.is_file() for p in chunks)
    assert job.details["chunks"] == len(chunks) and len(job.details["durations"]) == len(chunks)
    assert any("short" in w for w in job.warnings)  # a 33 s dataset gets the "very short dataset" note
    assert runner.store.log_path(job.id).is_file()


@pytest.mark.parametrize("stage", ["extract", "index", "train"])
def test_real_stage_failure_reason_is_one_line(runner: LocalProcessRunner, stage: str) -> None:
    from core.jobs.stages import ExtractRequest, IndexRequest, TrainRequest

    request = {"extract": ExtractRequest, "index": IndexRequest, "train": TrainRequest}[stage](exp="nothing_here")
    job = runner.wait(runner.submit(request).id)
    assert job.state == JobState.FAILED and job.stage == stage
    assert "nothing_here" in job.reason and "Traceback" not in job.reason and "\n" not in job.reason


def test_request_round_trips_through_json() -> None:
    from core.cover import CoverSettings
    from core.jobs.serialize import from_jsonable, to_jsonable
    from core.jobs.stages import CoverRequest
    from core.mix import MixSettings
    from core.separate import SeparationSettings

    req = CoverRequest(exp="v", song="s.mp3", settings=CoverSettings.build(SeparationSettings(dereverb=True),
                                                                          MixSettings(key=-3), "keep"))  # fmt: skip
    back = from_jsonable(CoverRequest, to_jsonable(req))
    assert back == req and back.settings.separation.split_backing and back.settings.mix.key == -3


def test_choice_enums_are_stored_as_plain_strings(tmp_logs: Path) -> None:
    """Configs holding StrEnum members (the defaults do) write the plain names to request.json and read back equal."""
    from core.convert import ConvertConfig
    from core.device import Device
    from core.features.encoders import ContentEncoder
    from core.features.extract import ExtractConfig
    from core.features.f0 import F0Method
    from core.jobs.serialize import from_jsonable, to_jsonable
    from core.jobs.stages import ConvertRequest, ExtractRequest
    from core.model.samplers import Sampler

    convert = ConvertRequest(exp="v", input="a.wav", config=ConvertConfig(f0_method=F0Method.FCPE, device=Device.CPU))
    extract = ExtractRequest(exp="v", config=ExtractConfig(F0Method.HARVEST, ContentEncoder.CONTENTVEC256L9, Device.CPU))
    assert convert.config.sampler is Sampler.DPM_SOLVER_PP  # the default is the member itself
    store = JobStore()
    for job_id, request in (("convert-job", convert), ("extract-job", extract)):
        store.folder(job_id).mkdir(parents=True)
        store.create_request(job_id, {"stage": job_id, "request": to_jsonable(request)})
    text = (store.folder("convert-job") / "request.json").read_text(encoding="utf-8")
    assert '"sampler": "dpm-solver++"' in text and '"f0_method": "fcpe"' in text and '"device": "cpu"' in text
    saved = store.request("extract-job")["request"]["config"]
    assert saved == {"f0_method": "harvest", "encoder": "contentvec256l9", "device": "cpu"}
    assert all(type(v) is str for v in saved.values())
    assert from_jsonable(ExtractRequest, store.request("extract-job")["request"]) == extract
    assert from_jsonable(ConvertRequest, store.request("convert-job")["request"]) == convert


def test_end_now_before_the_worker_started_kills_nothing(runner: LocalProcessRunner,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Between submit and launch a job has no pid: End now must not take that for ``psutil.Process(None)`` (this
    very process, i.e. the web server), nor a launch record that names this process."""
    import psutil

    killed: list[int] = []
    monkeypatch.setattr(psutil.Process, "kill", lambda self: killed.append(self.pid))
    store = runner.store
    for launch in (None, {"pid": os.getpid(), "created": psutil.Process().create_time()}):
        job = Job(id=store.new_id("wait"), stage="wait", experiment="a", title="not launched yet")
        store.create(job, {"stage": "wait", "request": {}})
        if launch is not None:
            (store.folder(job.id) / "launch.json").write_text(json.dumps(launch))
        assert store.worker_process(job) is None
        ended = runner.kill(job.id)
        assert ended.state == JobState.STOPPED and "ended at once" in ended.reason
    assert killed == []


def test_job_ids_sort_newest_first_within_one_second(tmp_logs: Path) -> None:
    """The Jobs list, Retry and the tabs' reattach take the first id as the newest: ids made in one second must
    still sort by creation."""
    from core.jobs.store import stage_of_id

    store = JobStore()
    made = [store.new_id("wait") for _ in range(200)]  # well within a second or two
    assert sorted(made) == made and len(set(made)) == len(made)
    assert {stage_of_id(job_id) for job_id in made} == {"wait"}
