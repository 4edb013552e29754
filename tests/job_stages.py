"""A test-only job stage (registered in the worker through ``SVCOVER_TEST_JOB_STAGES=tests.job_stages``).

``wait`` reports progress every 20 ms for ``seconds``, like a real stage between its progress reports, then
writes its output file; it can be told to fail (a missing ``require_file``), so the job machinery's states,
stop, retry and crash handling can be tested in seconds. It holds the same locks as the Extract stage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from core.errors import SvcoverError
from core.jobs.stages import JobContext, StageResult, StageSpec, _lock, register


@dataclass
class WaitRequest:
    exp: str
    seconds: float = 1.0
    output: str = ""
    require_file: str = ""
    upload: str = ""  # a file copied into the job folder (like a browser upload)


def _run_wait(req: WaitRequest, ctx: JobContext) -> StageResult:
    if req.require_file and not Path(req.require_file).is_file():
        raise SvcoverError(f"{req.require_file}: file not found")
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < req.seconds:
        ctx.progress(elapsed / req.seconds, f"waited {elapsed:.1f} s")
        time.sleep(0.02)
    ctx.warn("a warning from the stage")
    text = Path(req.upload).read_text(encoding="utf-8") if req.upload else "done"
    Path(req.output).write_text(text, encoding="utf-8")
    return StageResult(outputs=[req.output], details={"upload": req.upload})


register(StageSpec("wait", WaitRequest, _run_wait, lambda r: f"wait of {r.exp}", lambda r: _lock(r.exp, "dataset", "features"),
                   uploads=("upload",)))  # fmt: skip
