"""Jobs: every long operation (dataset, extract, train, index, convert, cover, downloads) as a persisted request.

A job is a request (the stage's request dataclass, serialised as JSON) run by ``python -m core.jobs.worker
<job_dir>`` in its own process. Its state, progress events, log and result live under ``logs/.jobs/<id>/``
so they survive a page reload, a closed browser and a restarted server. See docs/jobs.md.

Modules: :mod:`core.jobs.model` (states, the job record), :mod:`core.jobs.stages` (one request type and runner per
stage, their locks), :mod:`core.jobs.store` (the folders), :mod:`core.jobs.runner` (the ``JobRunner`` interface —
submit, status, events, stop — and ``LocalProcessRunner``, which a broker-backed runner can replace),
:mod:`core.jobs.worker` (the process that runs one job). This package imports nothing itself, so importing one of
them never pulls in the others (and no import cycle goes through the package).
"""
