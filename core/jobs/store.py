"""The job store: one folder per job under ``logs/.jobs/``, plus lock files for "one writer per store".

Layout of ``logs/.jobs/<id>/``:

* ``request.json`` — ``{"stage": ..., "request": {...}}``: what to run (never a command line);
* ``state.json`` — the :class:`~core.jobs.model.Job` record (state, progress, reason, outputs), replaced
  atomically by whoever changes it (the worker while it runs; a runner when it finds the worker dead);
* ``events.jsonl`` — progress/warning/state events, one JSON object per line, appended by the worker;
* ``log.txt`` — the worker's stdout/stderr (tracebacks of bugs end up here);
* ``stop`` — present once a stop was requested; ``inputs/`` — copies of uploaded files (so a retry works
  after the browser's temporary upload is gone).

``logs/.jobs/locks/<key>.lock`` holds the id of the job writing ``key`` (e.g. ``voice.features``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from core.experiment import logs_root
from core.fsutil import atomic_write_text
from core.jobs.model import ACTIVE_STATES, Job, JobConflictError, JobState, UnknownJobError

JOBS_FOLDER = ".jobs"
QUEUED_START_TIMEOUT_S = 120.0  # a queued job whose worker never reported in is failed after this
_PROCESS_TIME_TOLERANCE_S = 2.0

_lock_guard = threading.Lock()  # one submit at a time inside this process (lock files guard across processes)


def jobs_root() -> Path:
    return logs_root() / JOBS_FOLDER


def process_alive(pid: int | None, created: float | None) -> bool:
    """True if ``pid`` runs and was started at ``created`` (a pid reused by another program is not alive)."""
    if not pid:
        return False
    try:
        proc = psutil.Process(int(pid))
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return created is None or abs(proc.create_time() - created) < _PROCESS_TIME_TOLERANCE_S
    except psutil.Error:
        return False


def process_created(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _replace_text(path: Path, text: str) -> None:
    # On Windows, replacing a file another process has open for reading fails for a moment: retry briefly.
    for attempt in range(20):
        try:
            atomic_write_text(path, text)
            return
        except PermissionError:
            if attempt == 19:
                raise
            time.sleep(0.05)


_ID_LOCK = threading.Lock()
_last_id_us = 0


def stage_of_id(job_id: str) -> str:
    parts = job_id.split("-")
    return parts[2] if len(parts) >= 4 else ""


class JobStore:
    """Reads and writes the job folders under ``root`` (default ``logs/.jobs``)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else jobs_root()

    # -------------------------------------------------------------------------------- folders
    def folder(self, job_id: str) -> Path:
        if not job_id or "/" in job_id or "\\" in job_id or job_id.startswith("."):
            raise UnknownJobError(f"invalid job id {job_id!r}")
        return self.root / job_id

    def new_id(self, stage: str) -> str:
        """``<date>-<time.microseconds>-<stage>-<random>``: sorts by creation time (two jobs started in the same
        second too: a Retry right after a Stop is newer than its original) and names its stage (lists filter on it)."""
        global _last_id_us
        with _ID_LOCK:  # strictly increasing within this process, even for two ids in one microsecond
            _last_id_us = max(time.time_ns() // 1000, _last_id_us + 1)
            now_us = _last_id_us
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now_us // 1_000_000))
        return f"{stamp}.{now_us % 1_000_000:06d}-{stage}-{secrets.token_hex(3)}"

    def create(self, job: Job, request: dict[str, Any]) -> Path:
        folder = self.folder(job.id)
        folder.mkdir(parents=True, exist_ok=False)
        self.create_request(job.id, request)
        self.save(job)
        return folder

    def create_request(self, job_id: str, request: dict[str, Any]) -> None:
        atomic_write_text(self.folder(job_id) / "request.json", json.dumps(request, indent=1, ensure_ascii=False))

    def save(self, job: Job) -> None:
        _replace_text(self.folder(job.id) / "state.json", json.dumps(job.to_dict(), indent=1, ensure_ascii=False))

    def load(self, job_id: str) -> Job:
        path = self.folder(job_id) / "state.json"
        try:
            return Job.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise UnknownJobError(f"{path.parent}: no such job") from None
        except (json.JSONDecodeError, ValueError, TypeError) as e:
            raise UnknownJobError(f"{path}: unreadable job record ({e})") from None

    def request(self, job_id: str) -> dict[str, Any]:
        return json.loads((self.folder(job_id) / "request.json").read_text(encoding="utf-8"))

    def ids(self, stage: str | None = None) -> list[str]:
        """Job ids, newest first; with ``stage``, only that stage's (read from the id: no record is opened)."""
        if not self.root.is_dir():
            return []
        names = (n for n in os.listdir(self.root) if not n.startswith(".") and n != "locks")
        if stage is not None:
            names = (n for n in names if stage_of_id(n) == stage)
        return sorted(names, reverse=True)

    def log_path(self, job_id: str) -> Path:
        return self.folder(job_id) / "log.txt"

    # -------------------------------------------------------------------------------- events
    def append_event(self, job_id: str, event: dict[str, Any]) -> None:
        line = json.dumps({"t": round(time.time(), 3), **event}, ensure_ascii=False)
        with open(self.folder(job_id) / "events.jsonl", "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def events(self, job_id: str, since: int = 0) -> list[dict[str, Any]]:
        """Events from number ``since`` on (0 = all); a half-written last line is left for the next call."""
        try:
            lines = (self.folder(job_id) / "events.jsonl").read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines[since:]:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break
        return out

    # -------------------------------------------------------------------------------- stop
    def stop_file(self, job_id: str) -> Path:
        return self.folder(job_id) / "stop"

    def request_stop(self, job_id: str) -> None:
        atomic_write_text(self.stop_file(job_id), "stop\n")

    def stop_requested(self, job_id: str) -> bool:
        return self.stop_file(job_id).exists()

    # -------------------------------------------------------------------------------- liveness
    def refresh(self, job: Job) -> Job:
        """``job`` with a dead worker turned into ``failed`` (with the reason), persisted."""
        if job.state not in ACTIVE_STATES or self._alive(job):
            return job
        latest = self.load(job.id)  # the worker may have finished between our read and the check
        if latest.state not in ACTIVE_STATES or self._alive(latest):
            return latest
        where = f" at {latest.progress:.0%} ({latest.message})" if latest.message else ""
        latest.state = JobState.FAILED
        latest.finished = time.time()
        latest.reason = (
            f"the worker process ended without reporting{where}: it was killed, crashed or the computer restarted; "
            f"see {self.log_path(job.id)}; Retry runs it again (finished work is kept)"
        )
        self.save(latest)
        self.append_event(job.id, {"kind": "state", "state": str(latest.state), "reason": latest.reason})
        self.release_locks(latest)
        return latest

    def _worker_identity(self, job: Job) -> tuple[int | None, float | None] | None:
        """(pid, start time) of the process running ``job``: the worker once it reported in, else the process the
        runner started (still importing); None when neither is known yet."""
        if job.pid is not None:
            return job.pid, job.pid_created
        launched = self.launched(job.id)
        return None if launched is None else (launched.get("pid"), launched.get("created"))

    def _alive(self, job: Job) -> bool:
        identity = self._worker_identity(job)
        if identity is None:
            return time.time() - job.created < QUEUED_START_TIMEOUT_S  # being submitted right now
        return process_alive(*identity)

    def worker_process(self, job: Job) -> psutil.Process | None:
        """The live process running ``job``, or None when there is none yet or its pid now belongs to another
        program. Never this process: a job that has no pid yet must not be mistaken for ``psutil.Process(None)``,
        which is the caller itself."""
        pid, created = self._worker_identity(job) or (None, None)
        if not pid or int(pid) == os.getpid() or not process_alive(pid, created):
            return None
        try:
            return psutil.Process(int(pid))
        except psutil.Error:
            return None

    def record_launch(self, job_id: str, pid: int) -> None:
        """The process a runner started for ``job_id`` (kept apart from state.json, which the worker owns)."""
        data = {"pid": pid, "created": process_created(pid)}
        atomic_write_text(self.folder(job_id) / "launch.json", json.dumps(data))

    def launched(self, job_id: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.folder(job_id) / "launch.json").read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    # -------------------------------------------------------------------------------- locks
    def _lock_path(self, key: str) -> Path:
        return self.root / "locks" / f"{key}.lock"

    def holder(self, key: str) -> Job | None:
        """The active job holding lock ``key`` (stale locks of finished or dead jobs are removed)."""
        path = self._lock_path(key)
        try:
            job_id = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        try:
            job = self.refresh(self.load(job_id))
        except UnknownJobError:
            job = None
        if job is not None and job.active:
            return job
        with contextlib.suppress(FileNotFoundError):
            if path.read_text(encoding="utf-8").strip() == job_id:
                path.unlink()
        return None

    def acquire_locks(self, job: Job) -> None:
        """Take every lock of ``job`` or none; raise :class:`JobConflictError` naming the job in the way."""
        taken: list[str] = []
        with _lock_guard:
            try:
                for key in job.locks:
                    self._take(key, job)
                    taken.append(key)
            except BaseException:
                for key in taken:
                    self._release(key, job.id)
                raise

    def _take(self, key: str, job: Job) -> None:
        path = self._lock_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                other = self.holder(key)
                if other is not None:
                    raise JobConflictError(
                        f"{other.title} is already {other.state} (job {other.id}, {other.progress:.0%}); "
                        "wait for it or stop it in the Jobs view, then try again"
                    ) from None
                continue  # the stale lock was removed: try again
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(job.id)
            return
        raise JobConflictError(f"{path}: could not take the lock for {job.title}; try again")

    def _release(self, key: str, job_id: str) -> None:
        path = self._lock_path(key)
        with contextlib.suppress(FileNotFoundError):
            if path.read_text(encoding="utf-8").strip() == job_id:
                path.unlink()

    def release_locks(self, job: Job) -> None:
        for key in job.locks:
            self._release(key, job.id)
