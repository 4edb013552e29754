"""What a job is: its state machine and the record persisted in ``state.json``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from core.errors import SvcoverError
from core.jobs.serialize import from_jsonable, to_jsonable


class JobState(StrEnum):
    QUEUED = "queued"  # accepted, its worker process not yet running the stage
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # with a one-line ``reason``
    STOPPED = "stopped"  # on request; the stage kept what it had finished


ACTIVE_STATES = frozenset({JobState.QUEUED, JobState.RUNNING})
FINAL_STATES = frozenset({JobState.DONE, JobState.FAILED, JobState.STOPPED})


class JobConflictError(SvcoverError):
    """A second job would write what a running job writes (same experiment and stage)."""


class UnknownJobError(SvcoverError):
    """No job with this id under ``logs/.jobs/``."""


@dataclass
class Job:
    """One job as persisted in ``logs/.jobs/<id>/state.json``."""

    id: str
    stage: str
    experiment: str | None
    title: str  # one line for lists: "cover of my song.mp3 with voice"
    state: JobState = JobState.QUEUED
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    pid: int | None = None  # the worker process (with pid_created: a reused pid is not mistaken for it)
    pid_created: float | None = None
    progress: float = 0.0
    message: str = ""
    reason: str | None = None  # why it failed (one line) or what a stop kept
    outputs: list[str] = field(default_factory=list)  # files the job produced
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # stage-specific result for the page
    retry_of: str | None = None
    locks: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def duration(self) -> float | None:
        """Seconds run so far (or in total once finished)."""
        if self.started is None:
            return None
        return (self.finished or time.time()) - self.started

    def to_dict(self) -> dict[str, Any]:
        data = to_jsonable(self)
        data["state"] = str(self.state)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        job = from_jsonable(cls, data)
        job.state = JobState(job.state)
        return job
