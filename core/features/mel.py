"""The 44.1 kHz log-mel front end of the openvpi NSF-HiFiGAN vocoder, and the project's frame grid.

Frame grid (one convention for every feature: mel, f0, loudness, content units)
------------------------------------------------------------------------------
A waveform of ``N`` samples at 44 100 Hz has ``T = n_frames(N) = N // 512 + 1`` frames; frame ``i`` is
centred on sample ``i * 512`` (time ``i * 512 / 44100`` s). This is the grid Diffusion-SVC uses for
units, f0 and volume, so its pretrained decoder sees features exactly as it was trained.

The vocoder's mel front end itself yields ``1 + (N + 1536 - 2048) // 512`` frames (that is ``N // 512``
for ``N >= 512``): one frame fewer than the grid. :func:`log_mel` therefore appends a copy of its
last frame (and would drop surplus frames) so the result always has ``n_frames(N)`` columns; the
vocoder-exact frames are available with ``align=False``.

Mel formula (see ``shared/reference/mel44k/README.md``): reflect-pad 768 samples each side, STFT with
n_fft = win = 2048, hop 512, periodic Hann, no centring; magnitude ``sqrt(re^2 + im^2)``; librosa's
Slaney mel filterbank (128 bands, 40 Hz .. 16 kHz, Slaney area norm); ``ln(max(x, 1e-5))``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from core.config import AUDIO
from core.errors import SvcoverError

if TYPE_CHECKING:
    import torch

HOP = AUDIO.hop_length
SAMPLE_RATE = AUDIO.sample_rate
FRAME_RATE = SAMPLE_RATE / HOP  # ~86.13 frames per second
LOG_FLOOR = float(np.log(AUDIO.log_clamp))  # ln(1e-5) = -11.5129, the value of a silent bin


class BadAudioError(SvcoverError, ValueError):
    """A waveform that cannot be analysed (not 1-D, NaN/inf samples)."""


def n_frames(n_samples: int) -> int:
    """Frames of the project grid for ``n_samples`` samples at 44.1 kHz: ``n_samples // 512 + 1``."""
    if n_samples < 0:
        raise ValueError(f"negative sample count {n_samples}")
    return int(n_samples) // HOP + 1


def frame_times(count: int) -> np.ndarray:
    """Centre time in seconds of each of ``count`` grid frames (frame i is centred on sample i*512)."""
    return np.arange(count, dtype=np.float64) * (HOP / SAMPLE_RATE)


def as_waveform(wav: np.ndarray, what: str = "audio") -> np.ndarray:
    """Check and convert a waveform to contiguous 1-D float32.

    A ``[N, 1]`` or ``[1, N]`` array is flattened; anything else that is not 1-D, integer samples,
    and any NaN or infinite sample raise :class:`BadAudioError` (a decoding problem the caller should report with
    the file name rather than silently analyse).
    """
    arr = np.asarray(wav)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise BadAudioError(f"{what}: expected a mono 1-D waveform, got an array of shape {tuple(arr.shape)}")
    if arr.dtype.kind not in "f":  # int16 PCM etc. would be analysed 32768 times too loud
        raise BadAudioError(f"{what}: expected float samples in [-1, 1], got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    bad = ~np.isfinite(arr)
    if bad.any():
        raise BadAudioError(f"{what}: {int(bad.sum())} of {arr.size} samples are NaN or infinite")
    return arr


def fit_frames(feature: np.ndarray, count: int, axis: int = -1) -> np.ndarray:
    """Cut or extend ``feature`` along ``axis`` to ``count`` frames, repeating the last frame."""
    have = feature.shape[axis]
    if have == count:
        return feature
    if have > count:
        return np.take(feature, np.arange(count), axis=axis)
    if have == 0:
        raise ValueError("cannot extend a feature with no frames")
    index = np.minimum(np.arange(count), have - 1)
    return np.take(feature, index, axis=axis)


@functools.lru_cache(maxsize=4)
def mel_basis(sample_rate: int = SAMPLE_RATE, n_fft: int = AUDIO.n_fft, n_mels: int = AUDIO.n_mels,
              fmin: float = AUDIO.fmin, fmax: float = AUDIO.fmax, htk: bool = False) -> np.ndarray:
    """librosa's Slaney-normalised mel filterbank ``[n_mels, n_fft // 2 + 1]`` (computed once per setting).

    Computed here with numpy, in the same float64/float32 steps as ``librosa.filters.mel`` (equal to it;
    tests/test_mel_basis.py checks this): importing librosa costs ~1.5 s per process.
    """
    bin_hz = np.linspace(0.0, sample_rate / 2.0, 1 + n_fft // 2)
    # n_mels + 2 band edges evenly spaced on the mel scale; filter i rises from edge i to i+1, falls to i+2.
    edges_hz = _mel_to_hz(np.linspace(_hz_to_mel(fmin, htk), _hz_to_mel(fmax, htk), n_mels + 2), htk)
    widths = np.diff(edges_hz)
    distance = edges_hz[:, None] - bin_hz[None, :]
    basis = np.zeros((n_mels, bin_hz.size), dtype=np.float32)
    for i in range(n_mels):
        rising = -distance[i] / widths[i]
        falling = distance[i + 2] / widths[i + 1]
        basis[i] = np.maximum(0.0, np.minimum(rising, falling))
    basis *= (2.0 / (edges_hz[2 : n_mels + 2] - edges_hz[:n_mels]))[:, None]  # Slaney: equal area per filter
    basis.setflags(write=False)
    return basis


# Slaney's mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above (27 mels per factor 6.4).
_SLANEY_HZ_PER_MEL = 200.0 / 3.0
_SLANEY_BREAK_HZ = 1000.0
_SLANEY_BREAK_MEL = _SLANEY_BREAK_HZ / _SLANEY_HZ_PER_MEL
_SLANEY_LOG_STEP = float(np.log(6.4) / 27.0)


def _hz_to_mel(hz: float, htk: bool) -> float:
    if htk:
        return float(2595.0 * np.log10(1.0 + hz / 700.0))
    if hz >= _SLANEY_BREAK_HZ:
        return float(_SLANEY_BREAK_MEL + np.log(hz / _SLANEY_BREAK_HZ) / _SLANEY_LOG_STEP)
    return hz / _SLANEY_HZ_PER_MEL


def _mel_to_hz(mels: np.ndarray, htk: bool) -> np.ndarray:
    if htk:
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    hz = _SLANEY_HZ_PER_MEL * mels
    above = mels >= _SLANEY_BREAK_MEL
    hz[above] = _SLANEY_BREAK_HZ * np.exp(_SLANEY_LOG_STEP * (mels[above] - _SLANEY_BREAK_MEL))
    return hz


@functools.lru_cache(maxsize=8)
def _torch_constants(device: str) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    window = torch.hann_window(AUDIO.win_length, periodic=True, device=device)
    basis = torch.from_numpy(np.array(mel_basis())).to(device)
    return window, basis


def log_mel(wav44k: np.ndarray, align: bool = True, device: str = "cpu") -> np.ndarray:
    """Natural-log mel spectrogram ``[128, frames]`` float32 of a mono 44.1 kHz waveform in [-1, 1].

    With ``align=True`` (default) the result has ``n_frames(len(wav44k))`` frames (the project grid,
    last frame repeated); with ``align=False`` exactly the frames of the vocoder's own front end.
    Chunks too short for reflect padding (<= 768 samples) are zero-padded instead; an empty chunk
    gives one frame of silence.
    """
    import torch

    wav = as_waveform(wav44k)
    n = wav.size
    target = n_frames(n)
    if n == 0:
        return np.full((AUDIO.n_mels, 1), LOG_FLOOR, dtype=np.float32)
    pad_left = (AUDIO.win_length - HOP) // 2
    pad_right = (AUDIO.win_length - HOP + 1) // 2
    window, basis = _torch_constants(device)
    with torch.no_grad():
        y = torch.from_numpy(wav).to(device)[None, None, :]
        # reflect padding needs more samples than the pad width; tiny chunks get silence instead
        mode = "reflect" if n > max(pad_left, pad_right) else "constant"
        y = torch.nn.functional.pad(y, (pad_left, pad_right), mode=mode)[0, 0]
        if y.numel() < AUDIO.n_fft:  # still shorter than one window: complete it with silence
            y = torch.nn.functional.pad(y, (0, AUDIO.n_fft - y.numel()))
        spec = torch.stft(y, AUDIO.n_fft, hop_length=HOP, win_length=AUDIO.win_length, window=window,
                          center=False, normalized=False, onesided=True, return_complex=True)
        magnitude = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2))
        mel = torch.log(torch.clamp(basis @ magnitude, min=AUDIO.log_clamp))
    out = mel.cpu().numpy().astype(np.float32, copy=False)
    if align:
        out = fit_frames(out, target, axis=1)
    return np.ascontiguousarray(out)
