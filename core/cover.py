"""Song in, cover out: separate the vocals, convert them with a voice model, remix.

:func:`make_cover` is the whole pipeline. The voice conversion is a plain function
``convert_fn(vocals_path) -> converted_path`` handed in by the caller (the CLI and the UI build it
from the conversion stage with the key shift already bound), so the pipeline can be run and tested
with any stand-in. Separation and remix live in :mod:`core.separate` and :mod:`core.mix`.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from core.audio import decode_audio
from core.config import save_json
from core.errors import AudioDecodeError, SvcoverError
from core.fsutil import refuse_output_as_input, remove_stale_temp_files
from core.mix import SAMPLE_RATE, MixFigures, MixSettings, check_output_path, load_stereo, mix_cover, rms_db
from core.progress import ProgressFn, report, scaled
from core.separate import (
    LOW_MEMORY_SEGMENT_FRAMES,
    NO_VOCALS_DB,
    SeparationSettings,
    Stems,
    file_sha256,
    separate_song,
    stems_cache_root,
)

log = logging.getLogger(__name__)

ConvertFn = Callable[..., Path]  # convert_fn(vocals_path[, progress=...]) -> converted_path
# What happens to backing vocals after the lead/backing split (shared by the CLI and the UI).
BACKING_MODES = ("convert", "keep", "drop")
BACKING_DESCRIPTIONS = {
    "convert": "split, convert the backing vocals with the voice model too",
    "keep": "split, keep the original backing vocals (key-shifted)",
    "drop": "split, leave the backing vocals out",
}


@dataclass(frozen=True)
class CoverSettings:
    """Everything but the voice: separation, what to do with backing vocals, and the remix."""

    separation: SeparationSettings = field(default_factory=SeparationSettings)
    mix: MixSettings = field(default_factory=MixSettings)
    backing: str | None = None  # None: no lead/backing split; else one of BACKING_MODES

    def __post_init__(self) -> None:
        if self.backing is not None and self.backing not in BACKING_MODES:
            raise SvcoverError(f"--backing {self.backing!r}: use one of {', '.join(BACKING_MODES)}")
        if (self.backing is not None) != self.separation.split_backing:
            raise SvcoverError("backing mode and lead/backing split must be set together (use CoverSettings.build)")

    @classmethod
    def build(cls, separation: SeparationSettings | None = None, mix: MixSettings | None = None,
              backing: str | None = None) -> CoverSettings:  # fmt: skip
        """Settings with ``separation.split_backing`` switched on exactly when a backing mode is given."""
        separation = replace(separation or SeparationSettings(), split_backing=backing is not None)
        return cls(separation=separation, mix=mix or MixSettings(), backing=backing)


def low_memory_segment(low_memory: bool, segment_frames: int | None = None) -> int | None:
    """The Roformer segment of the low-memory switch (``--low-memory``, the Cover tab's checkbox): short
    LOW_MEMORY_SEGMENT_FRAMES segments when on, else ``segment_frames`` (None: the model's own)."""
    return LOW_MEMORY_SEGMENT_FRAMES if low_memory else segment_frames


@dataclass
class CoverResult:
    output: Path
    stems: Stems
    converted_vocals: Path | None
    converted_backing: Path | None
    vocal_match_db: float
    seconds: dict[str, float]  # wall time per stage: separate, convert, mix
    cpu_seconds: dict[str, float]  # CPU time of this process (all threads) per stage
    warnings: list[str]
    figures: MixFigures | None = None  # loudness (LUFS) and true peak (dBTP) of the cover and of the leads
    sidecar: Path | None = None  # <output>.json: the figures, times and warnings

    def loudness_line(self) -> str:
        """One line for people: the cover's loudness and true peak, and how close the lead's loudness came."""
        if self.figures is None:
            return ""
        f = self.figures

        def level(x: float) -> str:  # nan: shorter than one 400 ms loudness block
            return "n/a" if x != x else f"{x:.1f}"

        line = f"{level(f.lufs)} LUFS, true peak {level(f.true_peak_db)} dBTP"
        if f.vocal_lufs is not None and f.reference_vocal_lufs is not None:
            line += f"; lead {level(f.vocal_lufs)} LUFS (original {level(f.reference_vocal_lufs)})"
        return line


def _user_stems(vocals: Path, instrumental: Path) -> Stems:
    """Stems object for user-supplied files (no separation, nothing cached)."""
    for path in (vocals, instrumental):
        if not Path(path).is_file():
            raise AudioDecodeError(f"{path}: file not found")
    level = rms_db(load_stereo(vocals))  # the same measure separate_song uses for its vocal stem
    # Validate the instrumental now (damaged, truncated, too long) rather than after the conversion;
    # decoded without keeping the samples, the mix decodes it again.
    decode_audio(instrumental, SAMPLE_RATE, 2, lambda _block: None)
    stems = Stems(song=vocals, song_sha256=file_sha256(vocals), vocals=vocals, instrumental=instrumental,
                  full_vocals=vocals, vocals_rms_db=level, cached=False)  # fmt: skip
    if level <= NO_VOCALS_DB:
        message = f"{vocals}: the vocal file is silent ({level:.0f} dBFS); the cover will be the instrumental alone"
        log.warning(message)
        stems.warnings.append(message)
    return stems


def _converted(convert_fn: ConvertFn, path: Path, what: str, progress: ProgressFn | None) -> Path:
    # The conversion reports its sampler steps when the function takes a progress callback (the real stage does;
    # simple stand-ins need not).
    takes_progress = "progress" in inspect.signature(convert_fn).parameters
    out = Path(convert_fn(path, progress=progress) if takes_progress else convert_fn(path))
    if not out.is_file():
        raise SvcoverError(f"{out}: voice conversion of the {what} returned no file")
    return out


def _prefixed(progress: ProgressFn, prefix: str) -> ProgressFn:
    def inner(fraction: float, message: str = "") -> None:
        progress(fraction, f"{prefix}: {message}" if message else prefix)

    return inner


def make_cover(
    output: str | Path,
    convert_fn: ConvertFn,
    *,
    song: str | Path | None = None,
    vocals: str | Path | None = None,
    instrumental: str | Path | None = None,
    settings: CoverSettings | None = None,
    progress: ProgressFn | None = None,
) -> CoverResult:
    """Make a cover of ``song`` (or of user stems ``vocals`` + ``instrumental``) into ``output``.

    Parameters:
        output: cover file (.wav/.flac/.mp3); checked for writability before any work starts.
        convert_fn: ``convert_fn(vocals_path) -> converted_path``; applies the voice model and the key.
        song: a mixed song to separate. Exclusive with ``vocals``/``instrumental``.
        vocals, instrumental: user stems instead of a song.
        settings: separation, backing-vocal mode and remix settings.
        progress: callback ``(fraction, message)``.

    Returns:
        :class:`CoverResult` with the output path, the stems, per-stage times and warnings.

    A song without vocals gives a warning and the (key-shifted) instrumental; conversion is skipped.
    """
    settings = settings or CoverSettings()
    if (song is None) == (vocals is None and instrumental is None):
        raise SvcoverError("give either a song, or both a vocal and an instrumental file")
    if song is None and (vocals is None or instrumental is None):
        raise SvcoverError("user stems need both a vocal file and an instrumental file")
    output = check_output_path(output)
    refuse_output_as_input(output, [song, vocals, instrumental])
    remove_stale_temp_files(output.parent, user_folder=True)
    remove_stale_temp_files(stems_cache_root(), recursive=True)  # stems and scratch folders of a killed run
    seconds: dict[str, float] = {}
    cpu: dict[str, float] = {}

    t0, c0 = time.perf_counter(), time.process_time()
    if song is not None:
        stems = separate_song(song, settings.separation, progress=_prefixed(scaled(progress, 0.0, 0.45), "separating"))
    else:
        stems = _user_stems(Path(vocals), Path(instrumental))  # type: ignore[arg-type]
    seconds["separate"], cpu["separate"] = time.perf_counter() - t0, time.process_time() - c0
    warnings = list(stems.warnings)

    t0, c0 = time.perf_counter(), time.process_time()
    converted = converted_backing = None
    if stems.has_vocals:
        both = settings.backing == "convert" and stems.backing is not None
        lead_end = 0.7 if both else 0.9
        report(progress, 0.45, "converting the vocal")
        converted = _converted(convert_fn, stems.vocals, "lead vocal", _prefixed(scaled(progress, 0.45, lead_end), "converting the vocal"))
        if both:
            report(progress, 0.7, "converting the backing vocals")
            converted_backing = _converted(convert_fn, stems.backing, "backing vocals",
                                           _prefixed(scaled(progress, 0.7, 0.9), "converting the backing vocals"))  # fmt: skip
    seconds["convert"], cpu["convert"] = time.perf_counter() - t0, time.process_time() - c0

    t0, c0 = time.perf_counter(), time.process_time()
    backing = None
    if settings.backing == "convert":
        backing = converted_backing
    elif settings.backing == "keep":
        backing = stems.backing
    result = mix_cover(
        output,
        instrumental=stems.instrumental,
        vocals=converted,
        reference_vocals=stems.vocals,
        backing=backing,
        backing_is_converted=settings.backing == "convert",
        settings=settings.mix,
        progress=scaled(progress, 0.9, 1.0),
    )
    seconds["mix"], cpu["mix"] = time.perf_counter() - t0, time.process_time() - c0
    cover = CoverResult(output=result.path, stems=stems, converted_vocals=converted, converted_backing=converted_backing,
                        vocal_match_db=result.vocal_match_db, seconds=seconds, cpu_seconds=cpu,
                        warnings=warnings, figures=result.figures)  # fmt: skip
    cover.sidecar = _write_sidecar(cover)
    return cover


def _write_sidecar(result: CoverResult) -> Path:
    """``<output>.json`` beside the cover: its loudness figures, stage times and warnings (written atomically)."""
    path = result.output.with_name(result.output.name + ".json")
    save_json(path, {
        "cover": result.output.name,
        "mix": result.figures.as_dict() if result.figures is not None else None,
        "seconds": {k: round(v, 2) for k, v in result.seconds.items()},
        "warnings": result.warnings,
    })  # fmt: skip
    return path
