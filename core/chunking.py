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

from core.config import AUDIO


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
    hop: int = AUDIO.hop_length,
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
    the two neighbours overlap by ``fade`` samples (taken from their context). The fade keeps the power
    constant: equal-power (sin/cos-like) for unrelated signals, and — since both neighbours usually render
    the same input there, so they are strongly correlated — gains corrected by their measured correlation
    (see :func:`crossfade_gains`); a plain sin/cos fade would lift correlated material by up to 3 dB.
    """
    n = len(wav)
    out = np.zeros(n, dtype=np.float32)
    half = fade // 2
    tail: np.ndarray | None = None  # the previous piece's samples over the next seam's overlap
    for i, p in enumerate(pieces):
        seg = fn(np.ascontiguousarray(wav[p.ctx_start : p.ctx_end]), i)
        seg = _fit(np.asarray(seg, dtype=np.float32).reshape(-1), p.ctx_end - p.ctx_start)
        lo = p.start
        if i > 0 and tail is not None:
            h = len(tail) // 2
            head = seg[p.start - h - p.ctx_start : p.start + h - p.ctx_start]
            g_out, g_in = crossfade_gains(tail, head)
            out[p.start - h : p.start + h] = tail * g_out + head * g_in
            lo = p.start + h
        hi = p.end
        tail = None
        if i < len(pieces) - 1:
            nxt = pieces[i + 1]
            h = min(half, p.ctx_end - p.end, nxt.start - nxt.ctx_start, p.end - lo, nxt.end - nxt.start)
            hi = p.end - h
            tail = seg[p.end - h - p.ctx_start : p.end + h - p.ctx_start].copy()
        out[lo:hi] = seg[lo - p.ctx_start : hi - p.ctx_start]
    return out


def crossfade_gains(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fade-out gain for ``a`` and fade-in gain for ``b`` (same length) that keep the power constant.

    With a linear ramp ``w`` and the correlation ``r`` of the two signals (clipped to [0, 1]), the gains are
    ``(1-w, w) / sqrt(w^2 + (1-w)^2 + 2 r w (1-w))``: an equal-power fade for unrelated signals (r = 0) and
    a plain linear fade for identical ones (r = 1), which both keep the expected power of the mix at 1.
    """
    width = len(a)
    w = (np.arange(width, dtype=np.float64) + 0.5) / max(width, 1)
    denom = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
    r = float(np.clip(np.dot(a.astype(np.float64), b) / denom, 0.0, 1.0)) if denom > 0 else 1.0
    norm = np.sqrt(w * w + (1 - w) * (1 - w) + 2 * r * w * (1 - w))
    return ((1 - w) / norm).astype(np.float32), (w / norm).astype(np.float32)


def _fit(x: np.ndarray, length: int) -> np.ndarray:
    if len(x) >= length:
        return x[:length]
    return np.pad(x, (0, length - len(x)))
