"""Dataset stage: audio files, folders and zip archives -> 4-15 s training chunks in logs/<exp>/.

Per source file: decode (any FFmpeg format, via PyAV) -> 44.1 kHz mono -> zero-phase Butterworth high-pass
-> silence slicing (:mod:`core.slicer`) -> per-chunk loudness normalisation that never clips ->
``0_gt_wavs/<key>_<i>.wav`` (44.1 kHz) and ``1_16k_wavs/<key>_<i>.wav`` (16 kHz).

``key`` is a hash of the file's *content* and the settings, so re-running on the same inputs
rewrites nothing, adding a file adds only its chunks, and the same recording under two names is
used once. ``manifest.json`` (rewritten atomically after every file, so an interruption loses no
finished file) maps every chunk to its source, offset and duration, and remembers the skipped
files and quality notes of the last run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from core.audio import SNIFF_BYTES, load_audio, non_audio_kind, probe_audio, save_audio
from core.config import AUDIO, load_json, save_json, to_dict
from core.errors import AudioDecodeError, NothingToDoError, SvcoverError, WriteError
from core.experiment import PROJECT_ROOT, Experiment
from core.fsutil import portable_label, remove_stale_temp_files
from core.progress import ProgressFn, report, scaled
from core.slicer import SliceSettings, add_denormal_guard, slice_on_silence

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
ALGORITHM_VERSION = 1  # bump when the chunk audio for the same settings would change
# Extensions picked up inside folders and zip archives (files named explicitly are always tried).
AUDIO_EXTENSIONS = frozenset(
    "wav wave flac mp3 ogg oga opus m4a aac wma aif aiff aifc caf wv ape ac3 mka webm mp4 m4v mkv mov avi 3gp".split()
)
MAX_ZIP_MEMBER_BYTES = 4 << 30  # refuse zip members that would unpack to more than 4 GiB
# Refuse a whole archive above these, counted from its directory before anything is unpacked.
MAX_ZIP_MEMBERS = 20_000  # LJSpeech-sized (13,100 clips) archives still fit
MAX_ZIP_TOTAL_BYTES = 64 << 30  # uncompressed size of its audio members
SHORT_DATASET_S = 5 * 60
RECOMMENDED_DATASET_S = 10 * 60
CLIP_LEVEL = 0.995
CLIP_FRACTION_NOTE = 1e-4  # note a file when more than 0.01 % of its samples sit on flat tops at full scale
NORMALIZE_MODES = ("loudness", "peak", "none")


class NoUsableAudioError(NothingToDoError):
    """No input produced a chunk; ``report`` says what happened to every file."""

    def __init__(self, message: str, report: DatasetReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class DatasetConfig:
    """Every setting of the dataset stage (saved under "dataset" in logs/<exp>/config.json)."""

    slicing: SliceSettings = field(default_factory=SliceSettings)
    highpass_hz: float = 48.0  # removes rumble/DC that would skew the silence threshold and the model
    highpass_order: int = 5
    normalize: str = "loudness"  # loudness: RMS to target_rms_db; peak: peak to peak_limit; none
    target_rms_db: float = -20.0
    peak_limit: float = 0.9  # -0.9 dBFS: the normalised chunk (and its 16 kHz copy) never clips
    max_gain_db: float = 20.0  # loudness mode: do not raise a very quiet chunk's noise floor further

    def validate(self) -> None:
        self.slicing.validate()
        if self.normalize not in NORMALIZE_MODES:
            raise SvcoverError(f"normalize must be one of {', '.join(NORMALIZE_MODES)}, got {self.normalize!r}")
        if not 0.0 <= self.highpass_hz < 1000.0 or not 1 <= self.highpass_order <= 10:
            raise SvcoverError("highpass_hz must be in [0, 1000) (0 = off) and highpass_order in 1..10")
        if not 0.1 <= self.peak_limit <= 1.0 or not -60.0 <= self.target_rms_db <= 0.0:
            raise SvcoverError("peak_limit must be in [0.1, 1] and target_rms_db in [-60, 0]")

    def key(self) -> str:
        """Hash of everything that changes the chunks' audio."""
        data = {"algorithm": ALGORITHM_VERSION, "sr": AUDIO.sample_rate, **to_dict(self)}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names and k != "slicing"}
        slice_names = {f.name for f in dataclasses.fields(SliceSettings)}
        slicing = SliceSettings(**{k: v for k, v in data.get("slicing", {}).items() if k in slice_names})
        return cls(slicing=slicing, **kwargs)


@dataclass
class SkippedFile:
    file: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.reason}"


@dataclass
class DatasetReport:
    """What one run did, and the state of the whole dataset afterwards."""

    experiment: str
    files: int = 0  # audio files found in the inputs
    new_files: int = 0  # sliced in this run
    unchanged_files: int = 0  # already in the dataset with the same settings
    new_chunks: int = 0
    chunks: int = 0  # in the whole dataset
    total_s: float = 0.0
    mean_s: float = 0.0
    durations: list[float] = field(default_factory=list)  # every chunk of the dataset
    skipped: list[SkippedFile] = field(default_factory=list)
    ignored: int = 0  # non-audio files inside folders/archives (by extension)
    dropped_short: int = 0  # voiced bits too short to make or join a chunk
    dropped_short_s: float = 0.0
    notes: list[str] = field(default_factory=list)  # dataset quality notes
    new_chunk_files: list[Path] = field(default_factory=list)
    chunk_folder: Path | None = None

    def summary_lines(self) -> list[str]:
        lines = [
            f"experiment: {self.experiment}",
            f"files: {self.files} found, {self.new_files} sliced, {self.unchanged_files} unchanged, "
            f"{len(self.skipped)} skipped" + (f", {self.ignored} non-audio ignored" if self.ignored else ""),
            f"chunks: {self.chunks} in the dataset ({self.new_chunks} new)",
            f"duration: {_fmt_duration(self.total_s)} total, {self.mean_s:.1f} s mean per chunk",
        ]
        if self.dropped_short:
            lines.append(
                f"dropped: {self.dropped_short} voiced bits too short for a chunk ({self.dropped_short_s:.1f} s)"
            )
        lines += [f"skipped: {s}" for s in self.skipped]
        lines += [f"note: {n}" for n in self.notes]
        return lines


@dataclass
class _Source:
    label: str  # path as given (folder/zip members: the folder or archive as given + relative name)
    stored: str = ""  # the label the manifest records: no absolute path (logs/ files are served over HTTP)
    path: Path | None = None  # a file on disk
    archive: Path | None = None  # or a member of this zip
    member: str | None = None


def build_dataset(
    exp: str,
    inputs: list[Path] | list[str],
    config: DatasetConfig | None = None,
    progress: ProgressFn | None = None,
    labels: list[str] | None = None,
) -> DatasetReport:
    """Slice ``inputs`` (files, folders searched recursively, .zip archives) into ``logs/<exp>/``.

    ``labels`` (one per input) name the inputs in the manifest and the report instead of their
    paths, e.g. the original names of files uploaded through the web UI.

    Returns the report; raises :class:`NoUsableAudioError` when no input gave a chunk and the
    dataset is still empty, :class:`NothingToDoError` when the inputs hold no audio files at all,
    and :class:`~core.errors.InvalidNameError` for a bad experiment name (before writing anything).
    Chunks already in the dataset are never removed by a failing run.
    """
    experiment = Experiment.open(exp)
    config = config or DatasetConfig()
    config.validate()
    result = DatasetReport(experiment=exp, chunk_folder=experiment.gt_wavs)
    if not inputs:
        raise NothingToDoError("no inputs given: name audio files, folders or .zip archives")

    if labels is not None and len(labels) != len(inputs):
        raise ValueError("labels must name every input")
    given_labels = labels or [str(p) for p in inputs]
    sources = _collect(inputs, given_labels, result, exclude=experiment.root)
    roots = _portable_roots(given_labels)
    remove_stale_temp_files(experiment.root, experiment.gt_wavs, experiment.wavs16k)  # from a killed run
    result.files = len(sources)
    manifest = _load_manifest(experiment)
    config_key = config.key()
    seen: dict[str, str] = {}  # content hash -> label, within this run
    clip_files: list[str] = []
    low_rate_files: list[str] = []
    long_silences = 0
    silence_removed_s = 0.0

    report(progress, 0.0, f"{len(sources)} audio files")
    archives = _OpenArchives()  # one open ZipFile per archive: reopening re-reads its whole directory
    for i, source in enumerate(sources):
        step = scaled(progress, i / max(1, len(sources)), (i + 1) / max(1, len(sources)))
        report(step, 0.0, source.label)
        local: Path | None = None
        try:
            with _materialise(source, archives) as path:
                local = path
                content_hash = _file_sha256(path)
                if content_hash in seen:
                    result.skipped.append(SkippedFile(source.label, f"same audio as {seen[content_hash]}"))
                    continue
                seen[content_hash] = source.label
                entry = manifest["sources"].get(content_hash)
                if entry and entry["config_key"] == config_key and _chunks_present(experiment, entry["chunks"]):
                    result.unchanged_files += 1
                    if entry.get("source") != source.stored:
                        entry["source"] = source.stored
                    continue
                listed = {c["name"] for c in entry["chunks"]} if entry else set()
                new_entry = _process_file(
                    path, source.stored, content_hash, config, config_key, experiment, step, listed
                )
        except AudioDecodeError as e:
            result.skipped.append(SkippedFile(source.label, _reason(e, local)))
            continue
        except _Skip as e:
            result.skipped.append(SkippedFile(source.label, str(e)))
            continue
        except WriteError:
            raise  # disk full or the like: stop here (this file's chunks were removed), one line for the user
        except OSError as e:
            result.skipped.append(SkippedFile(source.label, f"cannot read ({e.strerror or e})"))
            continue
        except BaseException:
            archives.close()
            raise

        old = manifest["sources"].get(content_hash)
        manifest["sources"][content_hash] = new_entry
        _save_manifest(experiment, manifest, result, roots)  # commit before deleting anything old
        if old:
            _remove_chunks(experiment, {c["name"] for c in old["chunks"]} - {c["name"] for c in new_entry["chunks"]})
        result.new_files += 1
        result.new_chunks += len(new_entry["chunks"])
        result.new_chunk_files += [experiment.gt_wavs / c["name"] for c in new_entry["chunks"]]
        result.dropped_short += new_entry["dropped_short"]
        result.dropped_short_s += new_entry["dropped_short_s"]
        long_silences += new_entry["long_silences"]
        silence_removed_s += new_entry["silence_removed_s"]
        if new_entry["clipped_fraction"] > CLIP_FRACTION_NOTE:
            clip_files.append(f"{source.label} ({100 * new_entry['clipped_fraction']:.2f} % of samples)")
        if new_entry["input_sample_rate"] < 32000:
            low_rate_files.append(f"{source.label} ({new_entry['input_sample_rate'] / 1000:g} kHz)")

    archives.close()
    _fill_totals(result, manifest)
    if clip_files:
        result.notes.append(
            "clipped input (distorted peaks; the model will learn the distortion, use a cleaner take if you have one): "
            + _first_few(clip_files)
        )
    if low_rate_files:
        result.notes.append("low sample rate, no high frequencies to learn: " + _first_few(low_rate_files))
    if long_silences:
        result.notes.append(
            f"long silences removed: {long_silences} pauses shortened to {config.slicing.max_sil_kept_ms} ms "
            f"({_fmt_duration(silence_removed_s)} of silence removed, including leading/trailing silence)"
        )
    if result.chunks and result.total_s < SHORT_DATASET_S:
        result.notes.append(
            f"very short dataset: {_fmt_duration(result.total_s)} in total; less than 5 min gives a weak model, "
            f"aim for {RECOMMENDED_DATASET_S // 60}+ min of clean singing"
        )

    if result.new_files == 0 and result.unchanged_files == 0:
        # Nothing was written by this run; an existing dataset stays exactly as it was.
        suffix = f" (the existing {result.chunks} chunks are unchanged)" if result.chunks else ""
        raise NoUsableAudioError(_nothing_usable_message(result) + suffix, result)
    _save_manifest(experiment, manifest, result, roots)
    _save_config(experiment, config)
    report(progress, 1.0, f"{result.chunks} chunks")
    return result


class _Skip(Exception):
    """A file that decodes but gives no chunk; the message is the reason."""


def _process_file(
    path: Path,
    label: str,
    content_hash: str,
    config: DatasetConfig,
    config_key: str,
    experiment: Experiment,
    progress: ProgressFn,
    listed: set[str],
) -> dict[str, Any]:
    """Slice one file and write its chunks; ``listed``: its chunk names the manifest already has."""
    sr = AUDIO.sample_rate
    info = probe_audio(path)
    report(progress, 0.05, f"{label}: decoding")
    wav = load_audio(path, sr, info=info)
    clipped_fraction = _clipped_fraction(wav)
    sos = _highpass_sos(config, sr)
    report(progress, 0.4, f"{label}: slicing")
    plan = slice_on_silence(wav, sr, config.slicing, sos=sos)
    if not plan.voiced:
        raise _Skip(f"no voiced audio (everything is below {config.slicing.threshold_db:g} dB)")
    if not plan.chunks:
        voiced_s = plan.dropped_short_s
        raise _Skip(
            f"no chunk: only {voiced_s:.1f} s of voiced audio, less than one {config.slicing.min_chunk_s:g} s chunk"
        )

    chunk_key = hashlib.sha256(f"{content_hash}:{config_key}".encode()).hexdigest()[:10]
    chunks: list[dict[str, Any]] = []
    try:
        for idx, pieces in enumerate(plan.chunks):
            report(progress, 0.5 + 0.5 * idx / len(plan.chunks), f"{label}: chunk {idx + 1}/{len(plan.chunks)}")
            name = f"{chunk_key}_{idx:03d}.wav"
            _write_chunk(experiment, name, _normalise(_render(wav, pieces, sos), config), sr)
            chunks.append(_chunk_entry(name, label, pieces, sr))
    except BaseException:
        # Interrupted mid-file: remove the chunks the manifest does not list rather than leave files
        # that later stages would pick up from the folder without a manifest entry.
        written = {c["name"] for c in chunks} | {f"{chunk_key}_{len(chunks):03d}.wav"}
        _remove_chunks(experiment, written - listed)
        raise
    return {
        "source": label,
        "config_key": config_key,
        "input_sample_rate": info["sample_rate"],
        "input_channels": info["channels"],
        "duration_s": round(len(wav) / sr, 3),
        "clipped_fraction": clipped_fraction,
        "dropped_short": plan.dropped_short,
        "dropped_short_s": round(plan.dropped_short_s, 3),
        "long_silences": plan.long_silences,
        "silence_removed_s": round(plan.silence_removed_s, 3),
        "chunks": chunks,
    }


def _chunk_entry(name: str, label: str, pieces: list[tuple[int, int]], sr: int) -> dict[str, Any]:
    length = sum(e - s for s, e in pieces)
    return {
        "name": name,
        "source": label,
        "offset_s": round(pieces[0][0] / sr, 6),
        "duration_s": round(length / sr, 6),
        "pieces": [[round(s / sr, 6), round((e - s) / sr, 6)] for s, e in pieces],
    }


def _highpass_sos(config: DatasetConfig, sr: int) -> np.ndarray | None:
    if config.highpass_hz <= 0:
        return None
    from scipy.signal import butter

    # Second-order sections: the transfer-function (b, a) form of an order-5 filter at 48 Hz / 44.1 kHz
    # has poles so close to 1 that its coefficients lose precision.
    return butter(config.highpass_order, config.highpass_hz, btype="highpass", fs=sr, output="sos")


def _render(wav: np.ndarray, pieces: list[tuple[int, int]], sos: np.ndarray | None) -> np.ndarray:
    """A chunk's audio: each piece high-passed forwards and backwards (zero phase), then joined.

    Each piece is filtered with 1 s of real context on both sides (the filter's response has died
    out by then), which gives the same samples as filtering the whole file, in bounded memory.
    """
    from scipy.signal import sosfiltfilt

    sr = AUDIO.sample_rate
    out = []
    for s, e in pieces:
        if sos is None:
            out.append(wav[s:e])
            continue
        a, b = max(0, s - sr), min(len(wav), e + sr)
        seg = add_denormal_guard(wav[a:b].astype(np.float64))
        filtered = sosfiltfilt(sos, seg, padlen=min(len(seg) - 1, 3 * (2 * len(sos) + 1)))
        out.append(filtered[s - a : s - a + (e - s)].astype(np.float32))
    return np.concatenate(out).astype(np.float32, copy=False)


def _normalise(audio: np.ndarray, config: DatasetConfig) -> np.ndarray:
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if config.normalize == "none" or peak <= 1e-9:
        # Still never clip: a hot input plus the high-pass's ringing can exceed full scale.
        return audio * (config.peak_limit / peak) if peak > config.peak_limit else audio
    gain = config.peak_limit / peak
    if config.normalize == "loudness":
        rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
        gain = min(gain, 10 ** (config.target_rms_db / 20) / max(rms, 1e-9), 10 ** (config.max_gain_db / 20))
    return (audio * gain).astype(np.float32)


def _write_chunk(experiment: Experiment, name: str, audio: np.ndarray, sr: int) -> None:
    save_audio(experiment.gt_wavs / name, audio, sr)
    low = soxr.resample(audio, sr, AUDIO.content_sample_rate, quality="HQ").astype(np.float32)
    peak = float(np.max(np.abs(low))) if low.size else 0.0
    if peak > 0.999:  # resampling can overshoot a peak by a little; never let the copy clip
        low *= 0.999 / peak
    save_audio(experiment.wavs16k / name, low, AUDIO.content_sample_rate)


def _clipped_fraction(wav: np.ndarray, block: int = 1 << 22) -> float:
    """Share of samples on a flat top at full scale (this and the next sample both >= CLIP_LEVEL)."""
    if wav.size < 2:
        return 0.0
    count = 0
    for start in range(0, wav.size - 1, block):
        seg = np.abs(wav[start : min(wav.size, start + block + 1)]) >= CLIP_LEVEL
        count += int(np.count_nonzero(seg[:-1] & seg[1:]))
    return count / wav.size


# ----------------------------------------------------------------------------------------- inputs


def _collect(inputs: list[Path] | list[str], labels: list[str], result: DatasetReport, exclude: Path) -> list[_Source]:
    """Expand the inputs into audio sources; nothing under ``exclude`` (the experiment's own folder)."""
    sources: list[_Source] = []
    exclude = exclude.resolve()
    starts: list[tuple[int, str]] = []  # (index of the first source of an input, that input's label)
    for raw, given in zip(inputs, labels, strict=True):
        starts.append((len(sources), given))
        path = Path(raw)
        resolved = path.resolve()
        if resolved == exclude or exclude in resolved.parents or resolved in exclude.parents:
            # Slicing the dataset's own chunks into itself would duplicate them.
            result.skipped.append(SkippedFile(given, "is or contains this experiment's own dataset folder"))
            continue
        if path.is_dir():
            found = 0
            for p in sorted(path.rglob("*")):
                rel = p.relative_to(path)
                if any(part.startswith(".") or part == "__MACOSX" for part in rel.parts) or not p.is_file():
                    continue
                if p.is_symlink() and exclude in p.resolve().parents:
                    result.skipped.append(SkippedFile(str(p), "is or contains this experiment's own dataset folder"))
                    continue
                label = f"{given.rstrip('/').rstrip(chr(92))}/{rel.as_posix()}"
                if p.suffix.lower() == ".zip":
                    found += _collect_zip(p, label, sources, result)
                elif p.suffix.lower().lstrip(".") in AUDIO_EXTENSIONS:
                    sources.append(_Source(label, path=p))
                    found += 1
                else:
                    result.ignored += 1
            if not found:
                result.skipped.append(SkippedFile(given, "folder holds no audio files"))
        elif path.is_file() and path.suffix.lower() == ".zip":
            _collect_zip(path, given, sources, result)
        elif path.is_file():
            sources.append(_Source(given, path=path))
        else:
            result.skipped.append(SkippedFile(given, "not found"))
    _set_stored_labels(sources, starts)
    if not sources:
        details = "; ".join(str(s) for s in result.skipped[:5]) or "no inputs"
        raise NoUsableAudioError(f"no audio files found in the inputs ({details})", result)
    return sources


def _set_stored_labels(sources: list[_Source], starts: list[tuple[int, str]]) -> None:
    """The manifest's labels: each input's own label made portable (no absolute path of this machine)."""
    roots = _portable_roots([given for _, given in starts])
    bounds = [index for index, _ in starts[1:]] + [len(sources)]
    for (first, given), end in zip(starts, bounds, strict=True):
        root = given.rstrip("/").rstrip("\\")  # folder members are labelled "<root>/<relative name>"
        for source in sources[first:end]:
            source.stored = roots.get(root, given) + source.label[len(root) :]


def _collect_zip(path: Path, label: str, sources: list[_Source], result: DatasetReport) -> int:
    """Add the audio members of one archive; the whole archive is refused when it has too many
    members or its audio would unpack to too much (both read from its directory, nothing unpacked)."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        result.skipped.append(SkippedFile(label, f"not a readable zip archive ({e})"))
        return 0
    if len(members) > MAX_ZIP_MEMBERS:
        result.skipped.append(SkippedFile(label, f"{len(members)} files in the archive, more than the {MAX_ZIP_MEMBERS} "
                                                 "allowed; unpack it and import the folder instead"))  # fmt: skip
        return 0
    found: list[_Source] = []
    total = 0
    for m in sorted(members, key=lambda m: m.filename):
        parts = m.filename.replace("\\", "/").split("/")
        if ".." in parts or m.filename.startswith(("/", "\\")) or ":" in parts[0]:
            result.skipped.append(SkippedFile(f"{label}/{m.filename}", "unsafe path inside the archive, not unpacked"))
            continue
        if any(part.startswith(".") or part == "__MACOSX" for part in parts):
            continue
        if Path(m.filename).suffix.lower().lstrip(".") not in AUDIO_EXTENSIONS:
            result.ignored += 1
            continue
        member_label = f"{label}/{m.filename}"
        if m.file_size > MAX_ZIP_MEMBER_BYTES:
            result.skipped.append(SkippedFile(member_label, f"unpacks to {_fmt_bytes(m.file_size)}, more than the "
                                                            f"{_fmt_bytes(MAX_ZIP_MEMBER_BYTES)} allowed"))  # fmt: skip
            continue
        total += m.file_size
        found.append(_Source(member_label, archive=path, member=m.filename))
    if total > MAX_ZIP_TOTAL_BYTES:
        result.skipped.append(SkippedFile(label, f"its audio unpacks to {_fmt_bytes(total)}, more than the "
                                                 f"{_fmt_bytes(MAX_ZIP_TOTAL_BYTES)} allowed for one archive"))  # fmt: skip
        return 0
    if not found:
        result.skipped.append(SkippedFile(label, "archive holds no audio files"))
    sources += found
    return len(found)


def _fmt_bytes(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


class _OpenArchives:
    """Zip archives opened once each, and one temp folder, while members are unpacked one by one."""

    def __init__(self) -> None:
        self._open: dict[Path, zipfile.ZipFile] = {}
        self._tmp: tempfile.TemporaryDirectory | None = None

    def get(self, path: Path) -> zipfile.ZipFile:
        if path not in self._open:
            self._open[path] = zipfile.ZipFile(path)
        return self._open[path]

    def scratch(self) -> Path:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="svcover-zip-")
        return Path(self._tmp.name)

    def close(self) -> None:
        for zf in self._open.values():
            zf.close()
        self._open.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


@contextlib.contextmanager
def _materialise(source: _Source, archives: _OpenArchives) -> Iterator[Path]:
    """The source as a file on disk; zip members are unpacked one at a time into a temp folder.

    Only the member's base name is used on disk, so names like ``../../x`` cannot escape it. A
    member whose first bytes show it is not audio (text, image, archive ...) is skipped before
    anything is written.
    """
    if source.path is not None:
        yield source.path
        return
    assert source.archive is not None and source.member is not None
    target = archives.scratch() / ("member" + Path(source.member).suffix.lower())
    try:
        try:
            with archives.get(source.archive).open(source.member) as src:
                head = src.read(SNIFF_BYTES)
                kind = non_audio_kind(head)
                if kind:
                    raise _Skip(f"not audio (it is {kind})")
                with open(target, "wb") as dst:
                    dst.write(head)
                    shutil.copyfileobj(src, dst, 1 << 20)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, RuntimeError, ValueError) as e:
            # RuntimeError: encrypted member; BadZipFile: CRC mismatch or damaged data.
            raise _Skip(f"cannot unpack from the archive ({e})") from None
        yield target
    finally:
        target.unlink(missing_ok=True)


def _reason(err: AudioDecodeError, path: Path | None) -> str:
    """The error's text without the (possibly temporary) path it starts with."""
    text = str(err)
    prefix = f"{path}: "
    return text[len(prefix) :] if path is not None and text.startswith(prefix) else text


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------------------- manifest


def _load_manifest(experiment: Experiment) -> dict[str, Any]:
    if not experiment.manifest.exists():
        return {"version": MANIFEST_VERSION, "sources": {}}
    try:
        data = load_json(experiment.manifest)
        if not isinstance(data, dict) or not isinstance(data.get("sources"), dict):
            raise ValueError("unexpected layout")
    except (ValueError, OSError) as e:
        raise SvcoverError(
            f"{experiment.manifest}: damaged manifest ({e}); move it away to rebuild the dataset from its inputs"
        ) from None
    return data


def _portable_roots(given_labels: list[str]) -> dict[str, str]:
    """Each input label (as given) -> the form files under logs/ record (no absolute path of this machine)."""
    roots = {}
    for given in given_labels:
        root = given.rstrip("/").rstrip("\\")
        if root:
            roots[root] = portable_label(root, PROJECT_ROOT)
    return roots


def _portable_text(text: str, roots: dict[str, str]) -> str:
    for given in sorted(roots, key=len, reverse=True):  # longest first: an input inside another input's folder
        text = text.replace(given, roots[given])
    return text


def _save_manifest(experiment: Experiment, manifest: dict[str, Any], result: DatasetReport,
                   roots: dict[str, str]) -> None:  # fmt: skip
    chunks = [c for entry in manifest["sources"].values() for c in entry["chunks"]]
    skipped = [{"file": _portable_text(s.file, roots), "reason": _portable_text(s.reason, roots)} for s in result.skipped]
    manifest.update(
        version=MANIFEST_VERSION,
        sample_rate=AUDIO.sample_rate,
        content_sample_rate=AUDIO.content_sample_rate,
        chunks=chunks,
        last_run={"skipped": skipped, "notes": [_portable_text(n, roots) for n in result.notes]},
    )
    save_json(experiment.manifest, manifest)


def _save_config(experiment: Experiment, config: DatasetConfig) -> None:
    data: dict[str, Any] = {}
    if experiment.config.exists():
        with contextlib.suppress(ValueError, OSError):
            loaded = load_json(experiment.config)
            data = loaded if isinstance(loaded, dict) else {}
    data["dataset"] = {**to_dict(config), "sample_rate": AUDIO.sample_rate, "key": config.key()}
    save_json(experiment.config, data)


def _chunks_present(experiment: Experiment, chunks: list[dict[str, Any]]) -> bool:
    return all(
        (experiment.gt_wavs / c["name"]).is_file() and (experiment.wavs16k / c["name"]).is_file() for c in chunks
    )


def _remove_chunks(experiment: Experiment, names: set[str]) -> None:
    for name in names:
        for folder in (experiment.gt_wavs, experiment.wavs16k):
            with contextlib.suppress(FileNotFoundError):
                (folder / name).unlink()


def _fill_totals(result: DatasetReport, manifest: dict[str, Any]) -> None:
    durations = [c["duration_s"] for entry in manifest["sources"].values() for c in entry["chunks"]]
    result.durations = durations
    result.chunks = len(durations)
    result.total_s = float(sum(durations))
    result.mean_s = result.total_s / len(durations) if durations else 0.0


def _nothing_usable_message(result: DatasetReport) -> str:
    if len(result.skipped) == 1:
        return f"nothing usable: {result.skipped[0]}"
    return (
        f"nothing usable in {result.files} audio files: "
        + "; ".join(str(s) for s in result.skipped[:3])
        + (f"; ... ({len(result.skipped)} skipped)" if len(result.skipped) > 3 else "")
    )


def _first_few(items: list[str], n: int = 3) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def _fmt_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    return f"{minutes} min {sec:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"
