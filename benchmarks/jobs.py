"""Overheads of running stages as jobs: worker start-up, the page's poll of the newest job, a progress report.

    python benchmarks/jobs.py [--jobs 10 100 500] [--starts 3]

* start-up: submit -> ``running`` (the worker process imported svcover) and -> ``done`` for the test-only ``wait``
  stage of 0.1 s (tests/job_stages.py), i.e. what a job adds before and after its stage;
* poll: ``latest(experiment, stage)`` as each tab's timer calls it once a second, with N finished jobs on disk;
* report: one progress report of a stage (the worker persists at most every 0.3 s; most reports only update memory).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[10, 100, 500])
    parser.add_argument("--starts", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SVCOVER_LOGS"] = str(Path(tmp) / "logs")
        os.environ["SVCOVER_TEST_JOB_STAGES"] = "tests.job_stages"
        from core.jobs.model import Job, JobState
        from core.jobs.runner import LocalProcessRunner
        from core.jobs.store import JobStore
        from core.jobs.worker import _Reporter
        from tests.job_stages import WaitRequest

        runner = LocalProcessRunner(JobStore())
        to_running, to_done = [], []
        for i in range(args.starts):
            t0 = time.perf_counter()
            job = runner.submit(WaitRequest(exp="bench", seconds=0.1, output=str(Path(tmp) / f"out{i}")))
            while runner.status(job.id).state == JobState.QUEUED:
                time.sleep(0.01)
            to_running.append(time.perf_counter() - t0)
            runner.wait(job.id, poll=0.01)
            to_done.append(time.perf_counter() - t0)
        print(f"submit -> running: median {statistics.median(to_running):.2f} s (of {args.starts})")
        print(f"submit -> done (0.1 s stage): median {statistics.median(to_done):.2f} s")

        store = runner.store
        made = 0
        for n in sorted(args.jobs):
            while made < n:
                job = Job(id=store.new_id("cover") + f"{made:05d}", stage="cover", experiment=f"e{made % 7}",
                          title="t", state=JobState.DONE, finished=time.time())  # fmt: skip
                store.create(job, {"stage": "cover", "request": {}})
                made += 1
            reps = 20
            t0 = time.perf_counter()
            for _ in range(reps):
                runner.latest("e6", "cover")  # a tab's poll: the newest cover of one experiment (1 in 7 jobs)
            t1 = time.perf_counter()
            for _ in range(reps):
                runner.jobs(limit=30)  # the Jobs view
            t2 = time.perf_counter()
            print(f"with {n} jobs on disk: tab poll {1000 * (t1 - t0) / reps:.1f} ms, Jobs view {1000 * (t2 - t1) / reps:.1f} ms")

        job = Job(id="reporter", stage="wait", experiment="x", title="t")
        store.create(job, {"stage": "wait", "request": {}})
        reporter = _Reporter(store, job)
        reps = 20000
        t0 = time.perf_counter()
        for i in range(reps):
            reporter(i / reps, f"dpm-solver++ step {i % 40}/40")
        print(f"progress report: {1e6 * (time.perf_counter() - t0) / reps:.1f} us each ({reps} reports)")


if __name__ == "__main__":
    main()
