"""Jobs: every long operation (dataset, extract, train, index, convert, cover, downloads) as a persisted request.

A job is a request (the stage's request dataclass, serialised as JSON) run by ``python -m core.jobs.worker
<job_dir>`` in its own process. Its state, progress events, log and result live under ``logs/.jobs/<id>/``
so they survive a page reload, a closed browser and a restarted server. See docs/jobs.md.

The UI and the CLI talk to a :class:`JobRunner` (submit, status, events, stop); :class:`LocalProcessRunner`
starts local processes. A runner backed by a broker queue can replace it without touching the stages.
"""

from core.jobs.model import ACTIVE_STATES, FINAL_STATES, Job, JobConflictError, JobState
from core.jobs.runner import JobRunner, LocalProcessRunner, default_runner

__all__ = [
    "ACTIVE_STATES",
    "FINAL_STATES",
    "Job",
    "JobConflictError",
    "JobRunner",
    "JobState",
    "LocalProcessRunner",
    "default_runner",
]
