"""FCPE pitch estimator (the ``fcpe_c_v001.pt`` weights bundled in the ``torchfcpe`` 0.0.4 wheel).

The ``torchfcpe`` package imports torchaudio at import time, which must not be installed next to our
torch, so the package is never imported: it is installed with ``pip install --no-deps
torchfcpe==0.0.4`` only to provide the weight file, which is located with
``importlib.util.find_spec`` (that does not execute the package) and read with
:func:`core.checkpoints.safe_load`. The network below is our own implementation of the architecture
the checkpoint describes (``config_dict``): a conv input stack, 6 "conformer" layers that are
convolution-only in this release (``conv_only: true``), LayerNorm and a weight-normalised linear head
giving 360 sigmoid bins equally spaced in cents between ``f0_min`` and ``f0_max``.

A copy of the file at ``pretrained/fcpe/fcpe_c_v001.pt`` takes precedence over the package's.

Front end: 16 kHz, n_fft = win = 1024, hop 160, mel 128 bands 0..8 kHz (librosa Slaney), left pad 432
/ right pad 432 samples by reflection, no centring, magnitude ``sqrt(re^2 + im^2 + 1e-9)``,
``ln(max(x, 1e-5))``; ``N // 160 + 1`` frames (the last repeated when one short).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.checkpoints import safe_load
from core.errors import CheckpointError, MissingPretrainedError
from core.features.mel import as_waveform, fit_frames, mel_basis
from core.pretrained import pretrained_root

SAMPLE_RATE = 16000
HOP = 160
N_FFT = 1024
N_MELS = 128
DEFAULT_THRESHOLD = 0.006
WEIGHT_NAME = "fcpe_c_v001.pt"
PIP_COMMAND = "pip install --no-deps torchfcpe==0.0.4"


# ----------------------------------------------------------------------------------------- network
class _Transpose(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)


class _DepthwiseConv(nn.Module):
    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class ConvModule(nn.Module):
    """LayerNorm -> pointwise conv + GLU -> depthwise conv (k=31) -> SiLU -> pointwise conv."""

    def __init__(self, dim: int, expansion: int = 2, kernel_size: int = 31) -> None:
        super().__init__()
        inner = dim * expansion
        self.net = nn.Sequential(
            nn.LayerNorm(dim),
            _Transpose(),
            nn.Conv1d(dim, inner * 2, 1),
            nn.GLU(dim=1),
            _DepthwiseConv(inner, kernel_size),
            nn.SiLU(),
            nn.Conv1d(inner, dim, 1),
            _Transpose(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class EncoderLayer(nn.Module):
    """One convolution-only layer: ``x + conv_module(x)``. (``norm`` belongs to the unused attention path.)"""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conformer = ConvModule(dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conformer(x)


class _Encoder(nn.Module):
    def __init__(self, dim: int, n_layers: int) -> None:
        super().__init__()
        self.encoder_layers = nn.ModuleList([EncoderLayer(dim) for _ in range(n_layers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.encoder_layers:
            x = layer(x)
        return x


class FcpeNet(nn.Module):
    """log-mel ``[B, T, 128]`` -> latent ``[B, T, out_dims]`` in (0, 1)."""

    def __init__(self, n_mels: int = N_MELS, out_dims: int = 360, hidden: int = 512, n_layers: int = 6,
                 f0_min: float = 32.70, f0_max: float = 1975.5) -> None:
        super().__init__()
        self.input_stack = nn.Sequential(
            nn.Conv1d(n_mels, hidden, 3, padding=1),
            nn.GroupNorm(4, hidden),
            nn.LeakyReLU(),
            nn.Conv1d(hidden, hidden, 3, padding=1),
        )
        self.net = _Encoder(hidden, n_layers)
        self.norm = nn.LayerNorm(hidden)
        # weight-normalised head kept as its two stored parts (g, v): weight = g * v / ||v|| per row
        self.output_weight_g = nn.Parameter(torch.ones(out_dims, 1))
        self.output_weight_v = nn.Parameter(torch.zeros(out_dims, hidden))
        self.output_bias = nn.Parameter(torch.zeros(out_dims))
        cents = torch.linspace(_hz_to_cents(f0_min), _hz_to_cents(f0_max), out_dims)
        self.register_buffer("cent_table", cents)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.input_stack(mel.transpose(1, 2)).transpose(1, 2)
        x = self.norm(self.net(x))
        v = self.output_weight_v
        weight = self.output_weight_g * v / v.norm(dim=1, keepdim=True)
        return torch.sigmoid(torch.nn.functional.linear(x, weight, self.output_bias))


def _hz_to_cents(hz: float) -> float:
    return float(1200.0 * np.log2(hz / 10.0))


# Checkpoint key <-> our parameter names (only the head differs: we keep g/v as plain parameters).
_RENAMES = {
    "output_proj.weight_g": "output_weight_g",
    "output_proj.weight_v": "output_weight_v",
    "output_proj.bias": "output_bias",
    "output_proj.parametrizations.weight.original0": "output_weight_g",  # newer torch weight_norm export
    "output_proj.parametrizations.weight.original1": "output_weight_v",
}
_IGNORED = ("gaussian_blurred_cent_mask",)  # training-only buffer


def decode(latent: np.ndarray, cent_table: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """FCPE "local argmax" decoding: weighted mean of the cents of the 9 bins around the peak.

    Bins beyond the table edges are clamped to the edge bin (as in FCPE); frames whose peak is
    <= ``threshold`` are unvoiced (0 Hz).
    """
    lat = np.asarray(latent, dtype=np.float64)
    if lat.shape[0] == 0:
        return np.zeros(0, dtype=np.float32)
    n_bins = lat.shape[1]
    peak = lat.argmax(axis=1)
    index = np.clip(peak[:, None] + np.arange(-4, 5)[None, :], 0, n_bins - 1)
    s = np.take_along_axis(lat, index, axis=1)
    c = np.asarray(cent_table, dtype=np.float64)[index]
    with np.errstate(invalid="ignore", divide="ignore"):
        cents = (s * c).sum(axis=1) / s.sum(axis=1)
    voiced = (lat.max(axis=1) > threshold) & np.isfinite(cents)
    return np.where(voiced, 10.0 * 2.0 ** (np.where(voiced, cents, 0.0) / 1200.0), 0.0).astype(np.float32)


# -------------------------------------------------------------------------------------- front end
def log_mel_16k(wav16k: np.ndarray, device: str = "cpu") -> torch.Tensor:
    """FCPE's log-mel ``[N // 160 + 1, 128]`` of a 16 kHz waveform."""
    wav = torch.from_numpy(as_waveform(wav16k, "16 kHz audio")).to(device)
    n = wav.numel()
    pad_left = (N_FFT - HOP) // 2
    pad_right = max((N_FFT - HOP + 1) // 2, N_FFT - n - pad_left)
    mode = "reflect" if pad_right < n else "constant"  # tiny chunks cannot be reflected
    padded = torch.nn.functional.pad(wav[None, None], (pad_left, pad_right), mode=mode)[0, 0]
    window = torch.hann_window(N_FFT, periodic=True, device=device)
    spec = torch.stft(padded, N_FFT, hop_length=HOP, win_length=N_FFT, window=window, center=False,
                      return_complex=True)
    magnitude = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-9)
    basis = torch.from_numpy(np.array(mel_basis(SAMPLE_RATE, N_FFT, N_MELS, 0.0, 8000.0))).to(device)
    mel = torch.log(torch.clamp(basis @ magnitude, min=1e-5)).T  # [frames, 128]
    count = n // HOP + 1
    if mel.shape[0] != count:
        mel = torch.from_numpy(fit_frames(mel.cpu().numpy(), count, axis=0)).to(device)
    return mel


# ------------------------------------------------------------------------------------------ loader
def weight_path() -> Path:
    """The FCPE weight file: ``pretrained/fcpe/fcpe_c_v001.pt`` if present, else the torchfcpe wheel's copy."""
    local = pretrained_root() / "fcpe" / WEIGHT_NAME
    if local.is_file():
        return local
    try:
        spec = importlib.util.find_spec("torchfcpe")  # locates the package without running it
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            candidate = Path(folder) / "assets" / WEIGHT_NAME
            if candidate.is_file():
                return candidate
    raise MissingPretrainedError(
        f"missing FCPE weight file torchfcpe/assets/{WEIGHT_NAME}: install it with '{PIP_COMMAND}' "
        f"(or copy the file to {local})"
    )


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read an FCPE checkpoint safely: (state dict renamed for :class:`FcpeNet`, model hyperparameters)."""
    raw = safe_load(path)
    model_sd = raw.get("model")
    config = raw.get("config_dict")
    if not isinstance(model_sd, dict) or not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise CheckpointError(f"{path}: not an FCPE checkpoint: expected 'model' and 'config_dict' entries")
    mcfg = config["model"]
    if mcfg.get("type") != "CFNaiveMelPE":
        raise CheckpointError(f"{path}: not an FCPE checkpoint: model type {mcfg.get('type')!r} is not CFNaiveMelPE")
    if not mcfg.get("conv_only", False) or mcfg.get("use_harmonic_emb", False):
        raise CheckpointError(f"{path}: FCPE variants with attention or harmonic embedding are not supported")
    mel_cfg = config.get("mel", {})
    expected_mel = {"sr": SAMPLE_RATE, "num_mels": N_MELS, "n_fft": N_FFT, "win_size": N_FFT, "hop_size": HOP}
    for key, value in expected_mel.items():
        if mel_cfg.get(key, value) != value:
            raise CheckpointError(f"{path}: FCPE checkpoint uses mel {key}={mel_cfg.get(key)}, only {value} is supported")
    state = {}
    for key, value in model_sd.items():
        if key in _IGNORED:
            continue
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: not an FCPE checkpoint: entry {key} is not a tensor")
        state[_RENAMES.get(key, key)] = value.float() if value.is_floating_point() else value
    hyper = {
        "n_mels": N_MELS,
        "out_dims": int(mcfg.get("out_dims", 360)),
        "hidden": int(mcfg.get("hidden_dims", 512)),
        "n_layers": int(mcfg.get("n_layers", 6)),
        "f0_min": float(mcfg.get("f0_min", 32.70)),
        "f0_max": float(mcfg.get("f0_max", 1975.5)),
    }
    return state, hyper


class Fcpe:
    """A loaded FCPE model: ``f0()`` of 16 kHz audio at 100 frames per second (``N // 160 + 1`` frames)."""

    def __init__(self, net: FcpeNet, device: str = "cpu") -> None:
        self.net = net.to(device).eval()
        self.device = device

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu") -> Fcpe:
        state, hyper = load_checkpoint(path)
        net = FcpeNet(**hyper)
        expected = net.state_dict()
        missing = [k for k in expected if k not in state]
        unexpected = [k for k in state if k not in expected]
        if missing or unexpected:
            first = missing[0] if missing else unexpected[0]
            raise CheckpointError(
                f"{path}: not an FCPE checkpoint: {len(missing)} missing and {len(unexpected)} unknown keys (e.g. {first})"
            )
        for key, ref in expected.items():
            if tuple(state[key].shape) != tuple(ref.shape):
                raise CheckpointError(
                    f"{path}: not an FCPE checkpoint: {key} has shape {tuple(state[key].shape)}, expected {tuple(ref.shape)}"
                )
        net.load_state_dict(state)
        return cls(net, device)

    @classmethod
    def from_package(cls, device: str = "cpu") -> Fcpe:
        """The bundled real weights (see :func:`weight_path`)."""
        return cls.from_checkpoint(weight_path(), device)

    def latent(self, wav16k: np.ndarray) -> np.ndarray:
        """Network output ``[N // 160 + 1, 360]`` in (0, 1)."""
        with torch.no_grad():
            mel = log_mel_16k(wav16k, self.device)
            return self.net(mel[None])[0].float().cpu().numpy()

    def f0(self, wav16k: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
        """f0 in Hz per 10 ms frame (frame j centred on sample 160*j), 0 = unvoiced."""
        return decode(self.latent(wav16k), self.net.cent_table.cpu().numpy(), threshold)
