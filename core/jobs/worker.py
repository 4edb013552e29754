"""``python -m core.jobs.worker <job_dir>``: run one job's request and record everything in its folder.

The worker owns ``state.json`` while it runs: it marks the job running (with its pid and start time, so a
runner can tell a dead worker from a live one), reports progress (throttled), and writes the final state —
``done`` with outputs and warnings, ``stopped`` when a stop was requested, or ``failed`` with a one-line reason.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from core.errors import SvcoverError
from core.jobs.model import Job, JobState
from core.jobs.serialize import from_jsonable
from core.jobs.stages import STAGES, JobContext, JobStopped
from core.jobs.store import JobStore, process_created

TEST_STAGES_ENV = "SVCOVER_TEST_JOB_STAGES"  # test hook: a module registering extra stages. Never set by users.
PROGRESS_EVERY_S = 0.3  # at most this often to state.json / events.jsonl (sampler steps come much faster)
STOP_CHECK_EVERY_S = 0.2

log = logging.getLogger("core.jobs.worker")


class _Reporter:
    """The stage's progress callback: keeps the latest value, persists it at most every PROGRESS_EVERY_S."""

    def __init__(self, store: JobStore, job: Job) -> None:
        self.store, self.job = store, job
        self.last_write = 0.0
        self.last_phase = ""

    def __call__(self, fraction: float, message: str = "") -> None:
        self.job.progress = max(0.0, min(1.0, float(fraction)))
        self.job.message = message or self.job.message
        now = time.monotonic()
        # "separating: ...", "converting the vocal: ...", "mix: ..." -> the part before ":"; "pitch 3/9" -> "pitch"
        text = self.job.message
        phase = text.split(":", 1)[0] if ":" in text else text.split(" ", 1)[0]
        if now - self.last_write >= PROGRESS_EVERY_S or phase != self.last_phase:  # every phase shows up
            self.flush()
            self.last_write, self.last_phase = now, phase

    def flush(self) -> None:
        self.store.save(self.job)
        self.store.append_event(self.job.id, {"kind": "progress", "fraction": round(self.job.progress, 4),
                                              "message": self.job.message})  # fmt: skip

    def warn(self, message: str) -> None:
        if message not in self.job.warnings:
            self.job.warnings.append(message)
            self.store.append_event(self.job.id, {"kind": "warning", "message": message})


def run_job(store: JobStore, job_id: str) -> int:
    """Run job ``job_id`` of ``store`` in this process; returns the exit code (0 done, 1 failed, 2 stopped)."""
    if os.environ.get(TEST_STAGES_ENV):
        importlib.import_module(os.environ[TEST_STAGES_ENV])
    job = store.load(job_id)
    job.pid, job.pid_created = os.getpid(), process_created(os.getpid())
    job.state, job.started = JobState.RUNNING, time.time()
    store.save(job)
    store.append_event(job_id, {"kind": "state", "state": str(job.state), "pid": job.pid})
    reporter = _Reporter(store, job)
    signalled: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:  # SIGTERM from a runner or the OS: stop like the Stop button
        signalled.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}

    checked = {"at": 0.0, "stop": False}

    def stop_requested() -> bool:  # the stop file is looked at a few times a second, not at every sampler step
        now = time.monotonic()
        if not checked["stop"] and now - checked["at"] >= STOP_CHECK_EVERY_S:
            checked["at"], checked["stop"] = now, store.stop_requested(job_id)
        return bool(signalled) or checked["stop"]

    ctx = JobContext(job_id, store.folder(job_id), reporter, stop_requested, reporter.warn)
    try:
        saved = store.request(job_id)
        spec = STAGES.get(saved.get("stage", ""))
        if spec is None:
            raise SvcoverError(f"{store.folder(job_id)}: unknown stage {saved.get('stage')!r}")
        request = from_jsonable(spec.request_type, saved["request"])
        ctx.check_stop()
        log.info("job %s: %s", job_id, job.title)
        result = spec.run(request, ctx)
    except JobStopped:
        job.state = JobState.STOPPED
        job.reason = f"stopped on request at {job.progress:.0%}; work finished before the stop is kept"
    except SvcoverError as e:  # the page shows the reason: the fix is said as a UI action
        job.state, job.reason = JobState.FAILED, e.for_ui()
        log.error("job %s failed: %s", job_id, e)
    except KeyboardInterrupt:
        job.state, job.reason = JobState.STOPPED, f"interrupted at {job.progress:.0%}"
    except Exception as e:  # a bug: the traceback goes to log.txt, one line to the page
        traceback.print_exc()
        job.state = JobState.FAILED
        job.reason = f"unexpected error: {type(e).__name__}: {e} (traceback in {store.log_path(job_id)})"
    else:
        job.outputs, job.details = list(result.outputs), dict(result.details)
        for w in result.warnings:
            if w not in job.warnings:
                job.warnings.append(w)
        if result.stopped:
            job.state, job.reason = JobState.STOPPED, result.stopped
        else:
            job.state, job.progress = JobState.DONE, 1.0
    for sig, handler in previous.items():  # run_job can also run inside another program (tests)
        signal.signal(sig, handler)
    job.finished = time.time()
    store.save(job)
    store.append_event(job_id, {"kind": "state", "state": str(job.state), "reason": job.reason})
    store.release_locks(job)
    return {JobState.DONE: 0, JobState.FAILED: 1}.get(job.state, 2)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m core.jobs.worker <job_dir>", file=sys.stderr)
        return 2
    folder = Path(argv[0]).resolve()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_job(JobStore(folder.parent), folder.name)


if __name__ == "__main__":
    sys.exit(main())
