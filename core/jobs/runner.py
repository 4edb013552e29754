"""Runners: who starts a job's worker. The UI only uses the :class:`JobRunner` interface."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

import psutil

from core.errors import SvcoverError
from core.experiment import PROJECT_ROOT, validate_name
from core.jobs.model import Job, JobState
from core.jobs.serialize import from_jsonable, to_jsonable
from core.jobs.stages import STAGES, stage_of
from core.jobs.store import JobStore


class JobRunner(Protocol):
    """The four operations a front end needs. A runner backed by a broker queue (many users, several GPU
    machines) implements the same methods; requests are plain JSON, so they can travel over a queue."""

    def submit(self, request: Any, *, retry_of: str | None = None) -> Job: ...

    def status(self, job_id: str) -> Job: ...

    def events(self, job_id: str, since: int = 0) -> list[dict[str, Any]]: ...

    def stop(self, job_id: str) -> Job: ...


class LocalProcessRunner:
    """Runs each job as ``python -m core.jobs.worker <job_dir>`` on this machine, detached from the caller."""

    def __init__(self, store: JobStore | None = None, python: str | None = None) -> None:
        self.store = store or JobStore()
        self.python = python or sys.executable

    # ------------------------------------------------------------------------------ JobRunner
    def submit(self, request: Any, *, retry_of: str | None = None) -> Job:
        """Start a job for ``request`` (a stage request dataclass); refused with :class:`JobConflictError` while a
        job writing the same stores of the same experiment is queued or running."""
        spec = stage_of(request)
        exp = spec.experiment(request)
        if exp is not None:
            validate_name(exp)
        job = Job(id=self.store.new_id(spec.name), stage=spec.name, experiment=exp, title=spec.title(request),
                  locks=spec.locks(request), retry_of=retry_of)  # fmt: skip
        folder = self.store.folder(job.id)
        self.store.create(job, {"stage": spec.name, "request": {}})
        try:
            self.store.acquire_locks(job)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        try:
            request = self._keep_uploads(request, spec.uploads, folder / "inputs")
            self.store.create_request(job.id, {"stage": spec.name, "request": to_jsonable(request)})
            self._launch(folder)
        except BaseException as e:
            job.state, job.finished = JobState.FAILED, time.time()
            job.reason = str(e) if isinstance(e, SvcoverError) else f"could not start the job: {type(e).__name__}: {e}"
            self.store.save(job)
            self.store.release_locks(job)
            raise
        self.store.append_event(job.id, {"kind": "state", "state": str(JobState.QUEUED)})
        return job

    def status(self, job_id: str) -> Job:
        return self.store.refresh(self.store.load(job_id))

    def events(self, job_id: str, since: int = 0) -> list[dict[str, Any]]:
        return self.store.events(job_id, since)

    def stop(self, job_id: str) -> Job:
        """Ask the job to stop: its stage stops at the next progress report and keeps what it finished
        (training saves a checkpoint). A job that is already over is returned unchanged."""
        job = self.status(job_id)
        if job.active:
            self.store.request_stop(job_id)
            self.store.append_event(job_id, {"kind": "stop-requested"})
        return job

    # ------------------------------------------------------------------------------ more
    def retry(self, job_id: str) -> Job:
        """Submit the request of ``job_id`` again (its uploaded files were kept in its folder)."""
        job = self.status(job_id)
        if job.active:
            raise SvcoverError(f"{job.title} is still {job.state}; stop it before retrying")
        saved = self.store.request(job_id)
        spec = STAGES.get(saved.get("stage", ""))
        if spec is None:
            raise SvcoverError(f"job {job_id}: unknown stage {saved.get('stage')!r}")
        return self.submit(from_jsonable(spec.request_type, saved["request"]), retry_of=job_id)

    def request(self, job_id: str) -> Any:
        """The request dataclass a job was submitted with."""
        saved = self.store.request(job_id)
        return from_jsonable(STAGES[saved["stage"]].request_type, saved["request"])

    def kill(self, job_id: str) -> Job:
        """End a job's worker at once (for a stage stuck where it does not report progress); it shows ``stopped``."""
        job = self.status(job_id)
        if not job.active:
            return job
        self.store.request_stop(job_id)
        proc = self.store.worker_process(job)
        if proc is not None:  # none yet (between submit and launch): the stop request and the state below suffice
            with contextlib.suppress(psutil.Error):
                for p in [*proc.children(recursive=True), proc]:
                    with contextlib.suppress(psutil.Error):
                        p.kill()
                psutil.wait_procs([proc], timeout=5)
        job = self.store.load(job_id)
        if job.active:
            job.state, job.finished = JobState.STOPPED, time.time()
            job.reason = "ended at once on request (work since the last saved result is lost)"
            self.store.save(job)
            self.store.append_event(job_id, {"kind": "state", "state": str(job.state), "reason": job.reason})
            self.store.release_locks(job)
        return job

    def jobs(self, experiment: str | None = None, stage: str | None = None, limit: int = 30) -> list[Job]:
        """Recent jobs, newest first (dead workers turned into ``failed``)."""
        out = []
        for job_id in self.store.ids(stage):
            try:
                job = self.store.load(job_id)
            except SvcoverError:  # a folder being created right now, or not a job
                continue
            if (experiment is None or job.experiment == experiment) and (stage is None or job.stage == stage):
                out.append(self.store.refresh(job))
                if len(out) >= limit:
                    break
        return out

    def latest(self, experiment: str | None, stage: str) -> Job | None:
        found = self.jobs(experiment, stage, limit=1)
        return found[0] if found else None

    def wait(self, job_id: str, timeout: float = 600.0, poll: float = 0.2) -> Job:
        """Block until the job is over (tests, the CLI)."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.status(job_id)
            if not job.active or time.monotonic() > deadline:
                return job
            time.sleep(poll)

    # ------------------------------------------------------------------------------ internals
    def _launch(self, folder: Path) -> None:
        log = open(folder / "log.txt", "ab")  # noqa: SIM115 - the child keeps it open
        kwargs: dict[str, Any] = {
            "cwd": PROJECT_ROOT,
            "stdout": log,
            "stderr": subprocess.STDOUT,
            "stdin": subprocess.DEVNULL,
            "env": {**os.environ, "PYTHONIOENCODING": "utf-8"},  # log.txt is UTF-8 whatever the Windows code page
        }
        if os.name == "nt":  # its own process group and no console window: closing the server leaves it running
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW
        else:
            kwargs["start_new_session"] = True
        try:
            proc = subprocess.Popen([self.python, "-m", "core.jobs.worker", str(folder)], **kwargs)
        finally:
            log.close()
        self.store.record_launch(folder.name, proc.pid)

    def _keep_uploads(self, request: Any, fields: tuple[str, ...], target: Path) -> Any:
        """Copy uploaded (temporary) input files into the job folder so the job and its retries outlive them."""
        if not fields:
            return request

        changes = {}
        for name in fields:
            value = getattr(request, name)
            if isinstance(value, list):
                changes[name] = [self._keep(v, target / str(i)) for i, v in enumerate(value)]
            elif value:
                changes[name] = self._keep(value, target / name)
        return dataclasses.replace(request, **changes)

    def _keep(self, path: str, folder: Path) -> str:
        source = Path(path)
        if not source.is_file() or not _transient(source, self.store.root):
            return path  # the user's own files and folders stay where they are
        folder.mkdir(parents=True, exist_ok=True)
        copy = folder / source.name
        try:
            os.link(source, copy)
        except OSError:
            shutil.copy2(source, copy)
        return str(copy)


def _transient(path: Path, jobs_root: Path) -> bool:
    """Files in the temp folder (browser uploads) or in an earlier job's folder (a retry)."""
    roots = [Path(tempfile.gettempdir()), jobs_root]
    if os.environ.get("GRADIO_TEMP_DIR"):
        roots.append(Path(os.environ["GRADIO_TEMP_DIR"]))
    resolved = path.resolve()
    return any(resolved.is_relative_to(r.resolve()) for r in roots)


_DEFAULT: dict[str, LocalProcessRunner] = {}


def default_runner() -> LocalProcessRunner:
    """The runner of this process for the current logs root."""
    store = JobStore()
    key = str(store.root)
    if key not in _DEFAULT:
        _DEFAULT[key] = LocalProcessRunner(store)
    return _DEFAULT[key]
