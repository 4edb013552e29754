"""The stages a job can run: one request dataclass per stage (holding the stage's own config) and its runner.

A request is what the UI (or the CLI) submits; it is saved as JSON in the job folder and rebuilt by the worker,
so it holds only values (experiment name, input files, the stage's config dataclass), never a command line.
Each stage declares the locks it needs (``<experiment>.<store>``): two jobs that write the same store of one
experiment never run at once.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import pretrained
from core.config import AUDIO
from core.convert import ConvertConfig, ConvertResult, convert_files, make_convert_fn, open_voice_model
from core.cover import CoverSettings, make_cover
from core.dataset import DatasetConfig, NoUsableAudioError, build_dataset
from core.errors import SvcoverError
from core.experiment import Experiment
from core.features.extract import ExtractConfig, run_extract
from core.fsutil import unique_path
from core.index import build_index
from core.progress import scaled
from core.selftest import TESTED_MODELS, run_self_test
from core.train import TrainConfig, prepare, request_stop, train

log = logging.getLogger(__name__)


class JobStopped(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised inside a stage (by its progress callback) when the user asked the job to stop."""


@dataclass
class StageResult:
    """What a stage hands back to the job record."""

    outputs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    stopped: str | None = None  # set when the stage honoured a stop itself (training): what it kept


class JobContext:
    """Given to a stage by the worker: progress reporting, warnings and the stop request."""

    def __init__(self, job_id: str, folder: Path, progress: Callable[[float, str], None],
                 stop_requested: Callable[[], bool], warn: Callable[[str], None]) -> None:  # fmt: skip
        self.job_id = job_id
        self.folder = folder
        self._progress = progress
        self.stop_requested = stop_requested
        self.warn = warn
        self.stop_raises = True  # False while a stage saves on stop by itself (training)
        self.on_stop: Callable[[], None] | None = None  # called (each report) while a stop is pending

    def progress(self, fraction: float, message: str = "") -> None:
        if self.stop_requested():
            if self.stop_raises:
                raise JobStopped
            if self.on_stop is not None:
                self.on_stop()
        self._progress(fraction, message)

    def check_stop(self) -> None:
        if self.stop_requested():
            raise JobStopped


# ------------------------------------------------------------------------------------------------ requests
@dataclass
class DatasetRequest:
    exp: str
    inputs: list[str]
    labels: list[str] = field(default_factory=list)  # the names the user knows (uploads' original names)
    config: DatasetConfig = field(default_factory=DatasetConfig)


@dataclass
class ExtractRequest:
    exp: str
    config: ExtractConfig = field(default_factory=ExtractConfig)


@dataclass
class TrainRequest:
    exp: str
    config: TrainConfig = field(default_factory=TrainConfig)
    prepare: bool = True  # first build what is missing: dataset (from sources) and features
    sources: list[str] = field(default_factory=list)
    extract: ExtractConfig = field(default_factory=ExtractConfig)


@dataclass
class IndexRequest:
    exp: str
    seed: int = 0


@dataclass
class ConvertRequest:
    exp: str
    input: str
    config: ConvertConfig = field(default_factory=ConvertConfig)
    label: str = ""  # the input's name as the user knows it (an upload's original name)


@dataclass
class CoverRequest:
    exp: str
    song: str | None = None
    vocals: str | None = None
    instrumental: str | None = None
    convert: ConvertConfig = field(default_factory=ConvertConfig)
    settings: CoverSettings = field(default_factory=CoverSettings)
    format: str = "mp3"
    label: str = ""  # the song's (or vocal stem's) name as the user knows it


@dataclass
class DownloadRequest:
    names: list[str]
    force: bool = False


# ------------------------------------------------------------------------------------------------ runners
def _run_dataset(req: DatasetRequest, ctx: JobContext) -> StageResult:
    try:
        rep = build_dataset(req.exp, [Path(p) for p in req.inputs], req.config, ctx.progress, labels=req.labels or None)
    except NoUsableAudioError as e:
        e.problem = clean_reason(e.problem)
        e.args = (clean_reason(str(e)),)
        raise
    chunks = [str(p) for p in rep.new_chunk_files]
    details = {
        "summary_lines": rep.summary_lines(),
        "chunks": rep.chunks,
        "new_chunks": rep.new_chunks,
        "durations": list(rep.durations),
        "skipped": [{"file": s.file, "reason": clean_reason(s.reason)} for s in rep.skipped],
        "notes": list(rep.notes),
        "new_chunk_files": chunks,
        "chunk_folder": str(rep.chunk_folder) if rep.chunk_folder else None,
    }
    return StageResult(outputs=chunks, warnings=list(rep.notes), details=details)


_DECODER_PATH = re.compile(r"\((?:[A-Za-z]:)?[/\\][^()]*?: ")


def clean_reason(reason: str) -> str:
    """A skip reason without the temporary path ffmpeg quotes inside it (the file's own name is already given)."""
    return _DECODER_PATH.sub("(", reason)


def _run_extract(req: ExtractRequest, ctx: JobContext) -> StageResult:
    rep = run_extract(req.exp, req.config, ctx.progress)
    return StageResult(
        details={"summary": rep.summary(), "f0_method": req.config.f0_method, "encoder": req.config.encoder}
    )


def _run_train(req: TrainRequest, ctx: JobContext) -> StageResult:
    exp = Experiment.open(req.exp)
    if req.prepare:
        ctx.progress(0.0, "preparing the dataset and features")
        prepare(exp, req.sources or None, req.extract.f0_method, req.extract.encoder, req.extract.device,
                _prefixed(scaled(ctx.progress, 0.0, 1.0), "preparing"))  # fmt: skip
    ctx.check_stop()
    # Training saves a checkpoint when asked to stop: forward the job's stop to its stop file instead of
    # interrupting it from the progress callback.
    ctx.stop_raises = False
    ctx.on_stop = lambda: request_stop(exp)
    if ctx.stop_requested():
        request_stop(exp)
    result = train(exp, req.config, ctx.progress)
    details = {"step": result.step, "target": req.config.steps, "best_val_loss": result.best_val_loss,
               "checkpoint": str(result.checkpoint) if result.checkpoint else None}  # fmt: skip
    outputs = [str(result.checkpoint)] if result.checkpoint else []
    stopped = None
    if result.stopped_early:
        stopped = f"stopped at step {result.step} of {req.config.steps}; saved {Path(str(result.checkpoint)).name}"
    return StageResult(outputs=outputs, details=details, stopped=stopped)


def _prefixed(progress: Callable[[float, str], None], prefix: str) -> Callable[[float, str], None]:
    def inner(fraction: float, message: str = "") -> None:
        progress(fraction, f"{prefix}: {message}" if message else prefix)

    return inner


def _run_index(req: IndexRequest, ctx: JobContext) -> StageResult:
    path = build_index(req.exp, ctx.progress, seed=req.seed)
    return StageResult(outputs=[str(path)])


def _run_convert(req: ConvertRequest, ctx: JobContext) -> StageResult:
    source = Path(req.input)
    results = convert_files(req.exp, source, None, req.config, progress=ctx.progress)
    r = results[0]
    if req.label and Path(req.label).stem != source.stem:  # name the result after the file the user dropped
        named = unique_path(r.output.with_name(r.output.name.replace(source.stem, Path(req.label).stem, 1)))
        r.output = r.output.replace(named)
    details = _convert_details(r)
    return StageResult(outputs=[str(r.output)], warnings=list(r.warnings), details=details)


def _convert_details(r: Any) -> dict[str, Any]:
    details: dict[str, Any] = {
        "key": r.key, "suggested_key": r.suggested_key, "seconds_audio": r.seconds_audio,
        "seconds_taken": r.seconds_taken, "timings": dict(r.timings),
    }  # fmt: skip
    if r.source_f0 is not None and r.converted_f0 is not None:
        every = max(1, len(r.source_f0) // 3000)  # a long song would otherwise send ~20k points per minute
        details["f0_hop_s"] = every * AUDIO.hop_length / AUDIO.sample_rate
        details["source_f0"] = [round(float(v), 1) for v in r.source_f0[::every]]
        details["converted_f0"] = [round(float(v), 1) for v in r.converted_f0[::every]]
    return details


def cover_output_name(label: str, exp: str, key: float, fmt: str) -> str:
    return f"{Path(label).stem}_{exp}_key{key:g}_cover_{time.strftime('%Y%m%d-%H%M%S')}.{fmt}"


def _run_cover(req: CoverRequest, ctx: JobContext) -> StageResult:
    exp = open_voice_model(req.exp)
    ctx.progress(0.0, "loading the voice model")
    results: list[ConvertResult] = []
    convert_fn = make_convert_fn(exp.name, req.convert, results)
    label = req.label or Path(req.song or req.vocals or "cover").name
    output = unique_path(exp.outputs / cover_output_name(label, exp.name, req.settings.mix.key, req.format))
    result = make_cover(output, convert_fn, song=req.song, vocals=req.vocals, instrumental=req.instrumental,
                        settings=req.settings, progress=scaled(ctx.progress, 0.02, 1.0))  # fmt: skip
    warnings = list(result.warnings)
    for r in results:
        warnings += [w for w in r.warnings if w not in warnings]
    stems = {"vocals": result.stems.vocals, "instrumental": result.stems.instrumental, "backing": result.stems.backing,
             "converted_vocals": result.converted_vocals}  # fmt: skip
    details = {
        "seconds": result.seconds,
        "loudness": result.loudness_line() if result.figures is not None else None,  # LUFS / true peak of the mix
        "cached_stems": bool(result.stems.cached and req.song),
        "separation_models": list(result.stems.models) if req.song else [],
        "stems": {k: str(v) if v else None for k, v in stems.items()},
        "key": req.settings.mix.key,
        "suggested_key": results[0].suggested_key if results else None,
    }
    return StageResult(outputs=[str(result.output)], warnings=warnings, details=details)


def _run_download(req: DownloadRequest, ctx: JobContext) -> StageResult:
    """Install each entry (one failure does not stop the others), then self-test what was installed."""
    download_share = 0.8  # of the progress; the self-test of what was downloaded gets the rest
    lines, failed, installed = [], [], []
    for i, name in enumerate(req.names):
        entry = pretrained.get(name)  # only registry names reach the downloader
        sub = _prefixed(scaled(ctx.progress, download_share * i / len(req.names), download_share * (i + 1) / len(req.names)),
                        entry.name)  # fmt: skip
        try:
            st = pretrained.install(entry.name, sub, force=req.force)
            installed.append(entry.name)
            lines.append(f"{entry.name}: {st.state} ({st.detail})")
        except SvcoverError as e:  # one failure must not stop the others
            failed.append(entry.name)
            lines.append(f"{entry.name}: failed: {e.for_ui()}")
    if failed and len(failed) == len(req.names):
        raise SvcoverError("; ".join(lines))  # nothing was installed: the job failed, each reason in one line
    tested = [n for n in installed if n in TESTED_MODELS]
    checks = run_self_test(tested, _prefixed(scaled(ctx.progress, download_share, 1.0), "self-test")) if tested else []
    selftest = [{"model": c.model, "status": c.status, "detail": c.detail} for c in checks]
    warnings = [ln for ln in lines if ": failed: " in ln]
    warnings += [f"{c['model']}: self-test failed: {c['detail']}" for c in selftest if c["status"] == "fail"]
    return StageResult(warnings=warnings, details={"lines": lines, "failed": failed, "selftest": selftest})


# ------------------------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class StageSpec:
    name: str
    request_type: type
    run: Callable[[Any, JobContext], StageResult]
    title: Callable[[Any], str]
    locks: Callable[[Any], list[str]]  # "<exp>.<store>" keys; a job runs only while it holds all of them
    experiment: Callable[[Any], str | None] = lambda req: getattr(req, "exp", None)
    uploads: tuple[str, ...] = ()  # request fields holding files copied into the job folder on submit


def _lock(exp: str, *stores: str) -> list[str]:
    return [f"{exp}.{s}" for s in stores]


STAGES: dict[str, StageSpec] = {
    s.name: s
    for s in (
        StageSpec("dataset", DatasetRequest, _run_dataset, lambda r: f"dataset of {r.exp}",
                  lambda r: _lock(r.exp, "dataset", "features"), uploads=("inputs",)),
        StageSpec("extract", ExtractRequest, _run_extract, lambda r: f"extraction of {r.exp} ({r.config.f0_method})",
                  lambda r: _lock(r.exp, "dataset", "features")),
        StageSpec("train", TrainRequest, _run_train, lambda r: f"training of {r.exp}",
                  lambda r: _lock(r.exp, "dataset", "features", "train")),
        StageSpec("index", IndexRequest, _run_index, lambda r: f"index of {r.exp}", lambda r: _lock(r.exp, "features", "index")),
        StageSpec("convert", ConvertRequest, _run_convert,
                  lambda r: f"conversion of {r.label or Path(r.input).name} with {r.exp}", lambda r: _lock(r.exp, "convert"),
                  uploads=("input",)),
        StageSpec("cover", CoverRequest, _run_cover,
                  lambda r: f"cover of {r.label or Path(r.song or r.vocals or '').name} with {r.exp}",
                  lambda r: _lock(r.exp, "cover"), uploads=("song", "vocals", "instrumental")),
        StageSpec("download", DownloadRequest, _run_download, lambda r: f"download of {', '.join(r.names)}",
                  lambda r: ["pretrained.download"], experiment=lambda r: None),
    )
}  # fmt: skip


def stage_of(request: Any) -> StageSpec:
    for spec in STAGES.values():
        if type(request) is spec.request_type:
            return spec
    raise SvcoverError(f"{type(request).__name__} is not a job request")


def register(spec: StageSpec) -> None:
    """Add a stage (used by tests through ``SVCOVER_TEST_JOB_STAGES``; stages of svcover are listed above)."""
    STAGES[spec.name] = spec
