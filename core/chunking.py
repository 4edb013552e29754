"""Cutting long audio at quiet points and joining processed pieces with equal-power crossfades.

Used by conversion (and usable by separation): a long input is cut at the quietest frame near each
``max_seconds`` boundary, every piece is processed with some context on both sides, and the pieces
are joined back with short equal-power crossfades centred on the cuts, so the output has exactly the
input's length and the seams fall where there is (almost) nothing to hear.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Piece:
    """One piece: ``[start, end)`` is what it contributes; ``[ctx_start, ctx_end)`` is what gets processed."""

    start: int
    end: int
    ctx_start: int
    ctx_end: int


def frame_energy_db(wav: np.ndarray, hop: int) -> np.ndarray:
    """RMS in dB of consecutive ``hop``-sample frames (the last partial frame included)."""
    n = max(1, -(-len(wav) // hop))
    padded = np.zeros(n * hop, dtype=np.float64)
    padded[: len(wav)] = wav
    rms = np.sqrt(np.mean(padded.reshape(n, hop) ** 2, axis=1))
    return 20.0 * np.log10(np.maximum(rms, 1e-10))


def plan_pieces(
    wav: np.ndarray,
    sr: int,
    max_seconds: float,
    context_seconds: float = 1.0,
    search_seconds: float = 4.0,
    hop: int = 512,
) -> list[Piece]:
    """Cut points at the quietest frame within ``search_seconds`` before each ``max_seconds`` boundary.

    Cuts sit on multiples of ``hop`` so every piece keeps the feature grid aligned.
    """
    n = len(wav)
    max_len = max(hop, int(max_seconds * sr) // hop * hop)
    context = int(context_seconds * sr) // hop * hop
    if n <= max_len:
        return [Piece(0, n, 0, n)]
    from scipy.ndimage import maximum_filter1d

    # A frame is only as quiet as its loudest neighbour: keeps the crossfade around a cut inside the pause.
    energy = maximum_filter1d(frame_energy_db(wav, hop), size=9, mode="nearest")
    search = max(1, int(search_seconds * sr) // hop)
    cuts = [0]
    while n - cuts[-1] > max_len:
        last = cuts[-1] // hop
        hi = last + max_len // hop  # the furthest allowed cut (frame index)
        lo = max(last + 1, hi - search)
        quietest = lo + int(np.argmin(energy[lo:hi + 1]))
        cuts.append(quietest * hop)
    cuts.append(n)
    return [
        Piece(a, b, max(0, a - context), min(n, b + context))
        for a, b in zip(cuts[:-1], cuts[1:], strict=True)
    ]


def process_in_pieces(
    wav: np.ndarray,
    pieces: list[Piece],
    fn: Callable[[np.ndarray, int], np.ndarray],
    fade: int,
) -> np.ndarray:
    """Apply ``fn(segment, piece_index)`` to each piece's context segment and join with equal-power fades.

    ``fn`` must return a signal of the segment's length (it is padded/trimmed otherwise). Around each cut
    the two neighbours overlap by ``fade`` samples (taken from their context) with cos/sin gains.
    """
    n = len(wav)
    out = np.zeros(n, dtype=np.float32)
    half = fade // 2
    for i, p in enumerate(pieces):
        seg = fn(np.ascontiguousarray(wav[p.ctx_start : p.ctx_end]), i)
        seg = _fit(np.asarray(seg, dtype=np.float32).reshape(-1), p.ctx_end - p.ctx_start)
        # Region this piece writes: its own span widened by half a fade at inner cuts.
        lo = p.start - half if i > 0 else p.start
        hi = p.end + half if i < len(pieces) - 1 else p.end
        lo, hi = max(lo, p.ctx_start), min(hi, p.ctx_end)
        chunk = seg[lo - p.ctx_start : hi - p.ctx_start].copy()
        gain = np.ones(hi - lo, dtype=np.float32)
        if i > 0 and p.start - lo > 0:
            width = (p.start - lo) * 2
            ramp = _equal_power(width, rising=True)
            gain[:width] = ramp[: min(width, hi - lo)]
        if i < len(pieces) - 1 and hi - p.end > 0:
            width = (hi - p.end) * 2
            ramp = _equal_power(width, rising=False)
            gain[len(gain) - width :] *= ramp[max(0, width - len(gain)) :]
        out[lo:hi] += chunk * gain
    return out


def _equal_power(width: int, rising: bool) -> np.ndarray:
    x = (np.arange(width, dtype=np.float64) + 0.5) / width
    curve = np.sin(0.5 * np.pi * x) if rising else np.cos(0.5 * np.pi * x)
    return curve.astype(np.float32)


def _fit(x: np.ndarray, length: int) -> np.ndarray:
    if len(x) >= length:
        return x[:length]
    return np.pad(x, (0, length - len(x)))
