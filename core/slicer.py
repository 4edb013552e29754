"""Silence slicing: cut a recording at its pauses into training chunks of a bounded length.

The plan is computed from a frame-level RMS curve (10 ms hop), so it needs only a few bytes per
frame, whatever the length of the input. A chunk is a list of *pieces* (source spans): voiced
stretches separated by long pauses are joined with the pauses shortened to ``max_sil_kept_ms``.

1. Frames quieter than ``threshold_db`` (RMS, dBFS) are silent. Silent runs of at least
   ``min_interval_ms`` are pauses where a cut may happen; shorter gaps stay inside a stretch.
2. At each pause at most ``max_sil_kept_ms`` of silence is kept (half on each side of the cut);
   the rest is removed and counted. Leading and trailing silence is trimmed the same way.
3. A stretch longer than ``max_chunk_s`` is split into equal parts overlapping by ``overlap_s``.
4. Stretches shorter than ``min_chunk_s`` are joined with the following ones (pause shortened)
   until the chunk reaches ``min_chunk_s`` without exceeding ``max_chunk_s``; a leftover that
   cannot reach it is joined to the previous chunk when that fits, else dropped and counted.
   ``min_length_ms`` keeps RVC's meaning (no slice shorter than it); with 4-15 s chunks it is
   implied by ``min_chunk_s`` and only matters when ``min_chunk_s`` is set below it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from core.errors import SvcoverError

HOP_S = 0.01  # RMS frame hop
WIN_HOPS = 4  # RMS window = 4 hops = 40 ms, centred on the frame


@dataclass(frozen=True)
class SliceSettings:
    """How the dataset stage (core.dataset, DatasetConfig.slicing) cuts recordings into training chunks; the steps
    that use each field are in the module docstring."""

    threshold_db: float = -42.0  # RMS (dBFS, 40 ms windows every 10 ms) below which a frame is silent
    min_length_ms: int = 1500  # RVC's minimum slice length; only binds when min_chunk_s is set below it
    min_interval_ms: int = 400  # a silent run at least this long is a pause where a cut may happen
    max_sil_kept_ms: int = 500  # silence kept at each cut (half on each side); the rest is removed
    min_chunk_s: float = 4.0  # shorter stretches are joined with their neighbours up to this length
    max_chunk_s: float = 15.0  # longer stretches are split into equal parts (a training chunk's upper bound)
    overlap_s: float = 0.3  # overlap between the parts of a split stretch

    def validate(self) -> None:
        if not -120.0 <= self.threshold_db <= 0.0:
            raise SvcoverError(f"threshold_db must be between -120 and 0 dB, got {self.threshold_db}")
        if self.min_length_ms < 0 or self.min_interval_ms < 10 or self.max_sil_kept_ms < 0:
            raise SvcoverError("min_length_ms and max_sil_kept_ms must be >= 0 and min_interval_ms >= 10")
        if not 0.5 <= max(self.min_chunk_s, self.min_length_ms / 1000) < self.max_chunk_s:
            raise SvcoverError(
                f"chunk length bounds must satisfy 0.5 <= min ({self.min_chunk_s}) < max ({self.max_chunk_s}) seconds"
            )
        if not 0.0 <= self.overlap_s < self.max_chunk_s / 4:
            raise SvcoverError(f"overlap_s must be between 0 and max_chunk_s / 4, got {self.overlap_s}")


@dataclass
class SlicePlan:
    """Chunks as lists of (start, end) sample spans, plus what was removed."""

    chunks: list[list[tuple[int, int]]] = field(default_factory=list)
    dropped_short: int = 0  # voiced stretches too short to become or join a chunk
    dropped_short_s: float = 0.0
    long_silences: int = 0  # pauses longer than max_sil_kept that were shortened
    silence_removed_s: float = 0.0
    voiced: bool = False  # any frame above the threshold at all


def frame_rms_db(wav: np.ndarray, sr: int, sos: np.ndarray | None = None, block_hops: int = 6_000) -> np.ndarray:
    """RMS in dBFS of 40 ms windows every 10 ms (frame i centred on sample i*hop).

    Works block by block (sums of squares per hop in float64), so a 1-hour input needs a few MB
    here. ``sos`` optionally filters the signal first (causal, state carried across blocks: the
    phase does not matter for an energy curve).
    """
    from scipy.signal import sosfilt, sosfilt_zi

    hop = max(1, round(sr * HOP_S))
    n_frames = len(wav) // hop + 1
    hop_energy = np.zeros(n_frames + WIN_HOPS, dtype=np.float64)
    zi = sosfilt_zi(sos) * 0.0 if sos is not None else None
    for start in range(0, n_frames, block_hops):
        stop = min(n_frames, start + block_hops)
        block = wav[start * hop : stop * hop].astype(np.float64)
        if block.size == 0:
            break
        if sos is not None:
            block, zi = sosfilt(sos, add_denormal_guard(block), zi=zi)
        n_full = block.size // hop
        full = block[: n_full * hop].reshape(-1, hop)
        hop_energy[start : start + n_full] = np.einsum("ij,ij->i", full, full)
        rest = block[n_full * hop :]
        if rest.size:
            hop_energy[start + n_full] = float(rest @ rest)
    # Window of WIN_HOPS hops centred on each frame: hops [i - 2, i + 2).
    csum = np.concatenate([[0.0], np.cumsum(hop_energy)])
    idx = np.arange(n_frames)
    lo = np.clip(idx - WIN_HOPS // 2, 0, len(hop_energy))
    hi = np.clip(idx + WIN_HOPS // 2, 0, len(hop_energy))
    energy = (csum[hi] - csum[lo]) / (WIN_HOPS * hop)
    return (10.0 * np.log10(np.maximum(energy, 1e-20))).astype(np.float32)


DENORMAL_GUARD = 1e-12  # -240 dBFS


def add_denormal_guard(x: np.ndarray) -> np.ndarray:
    """``x`` (float64, modified in place) plus a -240 dB Nyquist-rate pattern, returned.

    In digital silence the state of an IIR filter decays into subnormal numbers, which the CPU
    handles ~100x slower (a mostly silent hour took minutes to high-pass). The pattern keeps the
    state normal and is 200 dB below anything audible or any silence threshold.
    """
    x[::2] += DENORMAL_GUARD
    x[1::2] -= DENORMAL_GUARD
    return x


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index runs where ``mask`` is True."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def plan_slices(rms_db: np.ndarray, n_samples: int, sr: int, settings: SliceSettings) -> SlicePlan:
    """Turn an RMS curve (from :func:`frame_rms_db`) into chunks of sample spans."""
    hop = max(1, round(sr * HOP_S))
    plan = SlicePlan()
    silent = rms_db < settings.threshold_db
    if silent.all():
        return plan
    plan.voiced = True
    min_interval = max(1, round(settings.min_interval_ms / 1000 / HOP_S))
    half_kept = round(settings.max_sil_kept_ms / 1000 * sr / 2)

    # Pauses (in samples) long enough to cut at; the file's edges count as pauses of any length.
    pauses = []
    for a, b in _runs(silent):
        at_edge = a == 0 or b == len(silent)
        if at_edge or b - a >= min_interval:
            pauses.append((a * hop if a > 0 else 0, min(n_samples, b * hop) if b < len(silent) else n_samples))

    stretches: list[tuple[int, int]] = []
    cursor = 0
    for a, b in pauses:
        keep_left = a + min(half_kept, (b - a) // 2) if a > 0 else 0
        keep_right = b - min(half_kept, (b - a) - (b - a) // 2) if b < n_samples else n_samples
        removed = max(0, keep_right - keep_left)
        if removed and 0 < a and b < n_samples:
            plan.long_silences += 1
        plan.silence_removed_s += removed / sr
        if keep_left > cursor:
            stretches.append((cursor, keep_left))
        cursor = max(cursor, keep_right)
    if cursor < n_samples:
        stretches.append((cursor, n_samples))

    # Split stretches longer than max_chunk into equal overlapping parts.
    max_len = round(settings.max_chunk_s * sr)
    min_chunk = round(max(settings.min_chunk_s, settings.min_length_ms / 1000) * sr)
    overlap = round(settings.overlap_s * sr)
    parts: list[tuple[int, int]] = []
    for s, e in stretches:
        length = e - s
        if length <= max_len:
            parts.append((s, e))
            continue
        n = math.ceil((length - overlap) / (max_len - overlap))
        part = (length + (n - 1) * overlap) // n
        step = part - overlap
        for i in range(n):
            a = s + i * step
            parts.append((a, min(e, a + part)) if i < n - 1 else (e - part, e))

    # Join short parts into chunks of [min_chunk, max_len] samples.
    def total(pieces: list[tuple[int, int]]) -> int:
        return sum(e - s for s, e in pieces)

    def drop(pieces: list[tuple[int, int]]) -> None:
        if plan.chunks and total(plan.chunks[-1]) + total(pieces) <= max_len:
            plan.chunks[-1].extend(pieces)
        else:
            plan.dropped_short += len(pieces)
            plan.dropped_short_s += total(pieces) / sr

    current: list[tuple[int, int]] = []
    for piece in parts:
        if current and total(current) + piece[1] - piece[0] > max_len:
            drop(current)
            current = []
        current.append(piece)
        if total(current) >= min_chunk:
            plan.chunks.append(current)
            current = []
    if current:
        drop(current)
    return plan


def slice_on_silence(
    wav: np.ndarray, sr: int, settings: SliceSettings | None = None, sos: np.ndarray | None = None
) -> SlicePlan:
    """Plan the chunks of a mono recording; see the module docstring for the rules.

    ``sos``: a filter (e.g. the dataset's high-pass) applied before measuring the loudness.
    """
    settings = settings or SliceSettings()
    settings.validate()
    return plan_slices(frame_rms_db(wav, sr, sos=sos), len(wav), sr, settings)


def render_chunk(wav: np.ndarray, pieces: list[tuple[int, int]]) -> np.ndarray:
    """The audio of one chunk: its pieces concatenated (float32)."""
    return np.concatenate([wav[s:e] for s, e in pieces]).astype(np.float32, copy=False)
