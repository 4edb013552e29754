"""RMVPE pitch estimator (the ``rmvpe.pt`` shipped with RVC), written from its published description.

The network is a U-Net over a 16 kHz log-mel (encoder 5 x 4 residual blocks with 2x2 average pooling,
4 intermediate levels, 5 transposed-convolution decoder levels) followed by a bidirectional GRU and a
360-bin sigmoid "salience" head (20-cent bins from ~31.7 Hz to ~2006 Hz). Module names equal the keys
of the released state dict, so the real file loads with ``strict`` key checking.

Checkpoint: a plain state dict, stored as float16; it is cast to float32 on load, and BatchNorm
``num_batches_tracked`` entries are optional. See ``shared/reference/rmvpe/README.md``.

Padding: the network needs a multiple of 32 frames. Classic RVC pads the mel at the end by
reflection, current RVC with zeros; because of the U-Net and the bidirectional GRU the choice changes
every frame a little. Both are supported (``pad="reflect" | "zero"``), reflect is the default.

Speed: a loaded model is prepared for inference by :func:`fuse_for_inference` (each eval-mode BatchNorm
folded into the convolution before it, ReLUs in place): ~10 % less CPU time, outputs equal to ~1e-6.
On the CPU the U-Net runs in channels-last memory format (another ~15 %).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core import pretrained
from core.checkpoints import safe_load
from core.errors import CheckpointError
from core.features.mel import as_waveform, mel_basis

SAMPLE_RATE = 16000
HOP = 160  # 100 frames per second
N_FFT = 1024
N_MELS = 128
N_BINS = 360
PAD_MODES = ("reflect", "zero")
DEFAULT_THRESHOLD = 0.03
_CENTS_OFFSET = 1997.3794084376191  # cents of bin 0 (relative to 10 Hz): ~31.7 Hz
_BN_EPS = 1e-5


# ----------------------------------------------------------------------------------------- network
class ConvBlockRes(nn.Module):
    """Two 3x3 conv + BatchNorm + ReLU stages with a (1x1 conv when the width changes) shortcut."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch, eps=_BN_EPS),
            nn.ReLU(),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch, eps=_BN_EPS),
            nn.ReLU(),
        )
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.shortcut is None else self.shortcut(x)
        return self.conv(x) + skip


class ResStack(nn.Module):
    """``n_blocks`` residual blocks, the first changing the width (``conv.0`` .. ``conv.N-1``)."""

    def __init__(self, in_ch: int, out_ch: int, n_blocks: int) -> None:
        super().__init__()
        self.conv = nn.ModuleList([ConvBlockRes(in_ch if i == 0 else out_ch, out_ch) for i in range(n_blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.conv:
            x = block(x)
        return x


class Encoder(nn.Module):
    def __init__(self, widths: list[int], n_blocks: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(1, eps=_BN_EPS)
        self.layers = nn.ModuleList([ResStack(widths[i], widths[i + 1], n_blocks) for i in range(len(widths) - 1)])
        self.pool = nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.bn(x)
        skips = []
        for layer in self.layers:
            x = layer(x)
            skips.append(x)  # kept before pooling
            x = self.pool(x)
        return x, skips


class Intermediate(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, n_layers: int, n_blocks: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            [ResStack(in_ch if i == 0 else out_ch, out_ch, n_blocks) for i in range(n_layers)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class DecoderLevel(nn.Module):
    """2x transposed-conv upsampling, concatenation with the encoder skip, residual blocks."""

    def __init__(self, in_ch: int, n_blocks: int) -> None:
        super().__init__()
        out_ch = in_ch // 2
        self.conv1 = nn.Sequential(
            nn.ConvTranspose2d(in_ch, out_ch, 3, stride=2, padding=1, output_padding=1, bias=False),
            nn.BatchNorm2d(out_ch, eps=_BN_EPS),
            nn.ReLU(),
        )
        self.conv2 = nn.ModuleList([ConvBlockRes(in_ch if i == 0 else out_ch, out_ch) for i in range(n_blocks)])

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.conv1(x), skip], dim=1)
        for block in self.conv2:
            x = block(x)
        return x


class Decoder(nn.Module):
    def __init__(self, in_ch: int, n_levels: int, n_blocks: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([DecoderLevel(in_ch // (2**i), n_blocks) for i in range(n_levels)])

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        for layer, skip in zip(self.layers, reversed(skips), strict=True):
            x = layer(x, skip)
        return x


class UNet(nn.Module):
    def __init__(self, n_blocks: int = 4, levels: int = 5, inter_layers: int = 4, base: int = 16) -> None:
        super().__init__()
        widths = [1] + [base * 2**i for i in range(levels)]  # 1, 16, 32, 64, 128, 256
        self.encoder = Encoder(widths, n_blocks)
        self.intermediate = Intermediate(widths[-1], widths[-1] * 2, inter_layers, n_blocks)
        self.decoder = Decoder(widths[-1] * 2, levels, n_blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, skips = self.encoder(x)
        return self.decoder(self.intermediate(x), skips)


class BiGRU(nn.Module):
    def __init__(self, n_in: int, n_hidden: int) -> None:
        super().__init__()
        self.gru = nn.GRU(n_in, n_hidden, num_layers=1, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(x)[0]


class RmvpeNet(nn.Module):
    """log-mel ``[B, 128, T]`` (T a multiple of 32) -> salience ``[B, T, 360]`` in (0, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.unet = UNet()
        self.cnn = nn.Conv2d(16, 3, 3, padding=1)
        self.fc = nn.Sequential(BiGRU(3 * N_MELS, 256), nn.Linear(512, N_BINS), nn.Dropout(0.25), nn.Sigmoid())

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = mel.transpose(-1, -2).unsqueeze(1)  # [B, 1, T, 128]
        x = self.cnn(self.unet(x))  # [B, 3, T, 128]
        x = x.transpose(1, 2).flatten(-2)  # [B, T, 384]
        return self.fc(x)


# -------------------------------------------------------------------------------------- front end
def log_mel_16k(wav16k: np.ndarray, device: str = "cpu") -> torch.Tensor:
    """RMVPE's 16 kHz log-mel ``[128, 1 + N // 160]`` (HTK mel scale, 30 Hz .. 8 kHz, centred STFT)."""
    wav = torch.from_numpy(as_waveform(wav16k, "16 kHz audio")).to(device)
    half = N_FFT // 2
    # torch.stft's centring reflects the signal, which needs more samples than the pad width
    mode = "reflect" if wav.numel() > half else "constant"
    padded = torch.nn.functional.pad(wav[None, None], (half, half), mode=mode)[0, 0]
    window = torch.hann_window(N_FFT, periodic=True, device=device)
    spec = torch.stft(padded, N_FFT, hop_length=HOP, win_length=N_FFT, window=window, center=False,
                      return_complex=True)
    magnitude = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2))
    basis = torch.from_numpy(np.array(mel_basis(SAMPLE_RATE, N_FFT, N_MELS, 30.0, 8000.0, True))).to(device)
    return torch.log(torch.clamp(basis @ magnitude, min=1e-5))


def pad_frames(mel: torch.Tensor, pad: str) -> torch.Tensor:
    """Pad ``[..., 128, T]`` at the end of time to the next multiple of 32 frames."""
    if pad not in PAD_MODES:
        raise ValueError(f"pad must be one of {PAD_MODES}, not {pad!r}")
    t = mel.shape[-1]
    n_pad = 32 * ((t - 1) // 32 + 1) - t
    if n_pad == 0:
        return mel
    if pad == "reflect" and n_pad < t:
        return torch.nn.functional.pad(mel, (0, n_pad), mode="reflect")
    # zero padding, also the fallback for clips too short to reflect (< n_pad + 1 frames)
    return torch.nn.functional.pad(mel, (0, n_pad), mode="constant", value=0.0)


@functools.lru_cache(maxsize=1)
def _cents_table() -> np.ndarray:
    return 20.0 * np.arange(N_BINS, dtype=np.float64) + _CENTS_OFFSET


def bin_to_hz(bins: np.ndarray | float) -> np.ndarray:
    """Frequency in Hz of (fractional) salience bin indices."""
    return 10.0 * 2.0 ** ((20.0 * np.asarray(bins, dtype=np.float64) + _CENTS_OFFSET) / 1200.0)


def decode(salience: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Salience ``[T, 360]`` -> f0 ``[T]`` Hz (0 = unvoiced) by RMVPE's local weighted average.

    Per frame: the salience-weighted mean of the cents of the 9 bins around the peak (bins outside
    the table count as salience 0); frames whose peak is <= ``threshold`` are unvoiced.
    """
    sal = np.asarray(salience, dtype=np.float32)
    if sal.ndim != 2 or sal.shape[1] != N_BINS:
        raise ValueError(f"salience must be [frames, {N_BINS}], got {sal.shape}")
    if sal.shape[0] == 0:
        return np.zeros(0, dtype=np.float32)
    padded = np.pad(sal, ((0, 0), (4, 4)))
    cents = np.pad(_cents_table().astype(np.float32), 4)
    peak = sal.argmax(axis=1)
    window = peak[:, None] + np.arange(9)[None, :]  # indices into the padded arrays, peak at +4
    s = np.take_along_axis(padded, window, axis=1)
    c = cents[window]
    with np.errstate(invalid="ignore", divide="ignore"):
        cents_mean = (s * c).sum(axis=1) / s.sum(axis=1)
    voiced = (sal.max(axis=1) > threshold) & np.isfinite(cents_mean)
    f0 = np.where(voiced, 10.0 * 2.0 ** (np.where(voiced, cents_mean, 0.0) / 1200.0), 0.0)
    return f0.astype(np.float32)


# ------------------------------------------------------------------------------------------ loader
def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read an RMVPE checkpoint safely and return a float32 state dict ready for :class:`RmvpeNet`.

    Accepts float16 or float32 files, with or without ``num_batches_tracked``. Raises
    :class:`CheckpointError` naming the file when it is not an RMVPE state dict.
    """
    raw = safe_load(path)
    if not all(isinstance(v, torch.Tensor) for v in raw.values()):
        wrapped = [k for k, v in raw.items() if isinstance(v, dict)]
        hint = f" (it is wrapped under {wrapped[0]!r})" if wrapped else ""
        raise CheckpointError(f"{path}: not an RMVPE checkpoint: expected a plain state dict of tensors{hint}")
    with torch.device("meta"):  # shapes only: no memory, no random init of 90 M weights
        expected = {k: v for k, v in RmvpeNet().state_dict().items() if not k.endswith("num_batches_tracked")}
    state = {k: v for k, v in raw.items() if not k.endswith("num_batches_tracked")}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        detail = f"{len(missing)} missing keys (e.g. {missing[0]})" if missing else ""
        if unexpected:
            detail += (", " if detail else "") + f"{len(unexpected)} unknown keys (e.g. {unexpected[0]})"
        raise CheckpointError(f"{path}: not an RMVPE checkpoint: {detail}")
    for key, ref in expected.items():
        if tuple(state[key].shape) != tuple(ref.shape):
            raise CheckpointError(
                f"{path}: not an RMVPE checkpoint: {key} has shape {tuple(state[key].shape)}, expected {tuple(ref.shape)}"
            )
    out = {}
    for key, value in state.items():
        value = value.float() if value.is_floating_point() else value
        # A sum is ~20x cheaper than an element-wise test and is non-finite whenever an element is (it
        # can also overflow on huge finite values, hence the exact test only then).
        if value.is_floating_point() and not torch.isfinite(value.sum()) and not torch.isfinite(value).all():
            raise CheckpointError(f"{path}: corrupt RMVPE checkpoint: {key} contains NaN or infinite values")
        out[key] = value
    return out


def fuse_for_inference(net: RmvpeNet) -> RmvpeNet:
    """Fold every BatchNorm that directly follows a (transposed) convolution into that convolution and make
    the ReLUs in-place; ``net`` is changed in place and returned, in eval mode.

    Inference only: the folded network has no BatchNorm parameters to train and its state dict keys
    differ from the checkpoint's. BatchNorm in eval mode is ``y = (x - mean) * s + beta`` with
    ``s = gamma / sqrt(var + eps)``, so it equals the convolution with its output channels scaled by ``s``
    and the bias ``(b - mean) * s + beta``.
    """
    net.eval()
    with torch.no_grad():
        for module in net.modules():
            if not isinstance(module, nn.Sequential):
                continue
            for i in range(len(module) - 1):
                conv, norm = module[i], module[i + 1]
                if not (isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(norm, nn.BatchNorm2d)):
                    continue
                scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
                # Output channels are dim 0 of a Conv2d weight, dim 1 of a ConvTranspose2d weight.
                shape = (1, -1, 1, 1) if isinstance(conv, nn.ConvTranspose2d) else (-1, 1, 1, 1)
                conv.weight.mul_(scale.reshape(shape))
                bias = norm.bias - norm.running_mean * scale
                if conv.bias is not None:
                    bias = bias + conv.bias * scale
                conv.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)
                module[i + 1] = nn.Identity()
            for i, layer in enumerate(module):
                if isinstance(layer, nn.ReLU):
                    module[i] = nn.ReLU(inplace=True)
    return net


class Rmvpe:
    """A loaded RMVPE model: ``salience()`` and ``f0()`` of 16 kHz audio at 100 frames per second."""

    def __init__(self, net: RmvpeNet, device: str = "cpu") -> None:
        self.net = net.to(device).eval()
        if torch.device(device).type == "cpu":
            # oneDNN's convolutions are ~15 % faster on channels-last (NHWC) tensors; the convolution
            # weights being channels-last makes every activation of the U-Net channels-last too.
            self.net.to(memory_format=torch.channels_last)
        self.device = device

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu") -> Rmvpe:
        state = load_state_dict(path)  # every weight checked present with the right shape
        with torch.device("meta"):
            net = RmvpeNet()
        for name, _ in net.named_buffers():
            if name.endswith("num_batches_tracked"):  # optional in the file, unused at inference
                state[name] = torch.zeros((), dtype=torch.long)
        # assign: the network takes the loaded tensors as they are (no second 362 MB float32 copy)
        net.load_state_dict(state, strict=True, assign=True)
        del state
        return cls(fuse_for_inference(net), device)

    @classmethod
    def from_pretrained(cls, device: str = "cpu") -> Rmvpe:
        """The model at ``pretrained/rmvpe/rmvpe.pt`` (MissingPretrainedError names the download command)."""
        return cls.from_checkpoint(pretrained.require(pretrained.RMVPE, download_name="rmvpe"), device)

    def mel(self, wav16k: np.ndarray) -> np.ndarray:
        """The 16 kHz log-mel ``[128, 1 + N // 160]`` the network reads."""
        with torch.inference_mode():
            return log_mel_16k(wav16k, self.device).cpu().numpy()

    def salience_from_mel(self, mel: np.ndarray | torch.Tensor, pad: str = "reflect") -> np.ndarray:
        """Network output ``[T, 360]`` for a log-mel ``[128, T]``."""
        with torch.inference_mode():
            m = torch.as_tensor(mel, dtype=torch.float32, device=self.device)
            t = m.shape[-1]
            hidden = self.net(pad_frames(m, pad)[None])[0, :t]
        return hidden.float().cpu().numpy()

    def salience(self, wav16k: np.ndarray, pad: str = "reflect") -> np.ndarray:
        """Salience ``[1 + N // 160, 360]`` (values in 0..1) of a mono 16 kHz waveform."""
        if pad not in PAD_MODES:
            raise ValueError(f"pad must be one of {PAD_MODES}, not {pad!r}")
        with torch.inference_mode():
            mel = log_mel_16k(wav16k, self.device)
        return self.salience_from_mel(mel, pad)

    def f0(self, wav16k: np.ndarray, threshold: float = DEFAULT_THRESHOLD, pad: str = "reflect") -> np.ndarray:
        """f0 in Hz per 10 ms frame (frame j centred on sample 160*j), 0 = unvoiced."""
        return decode(self.salience(wav16k, pad), threshold)
