"""NSF-HiFiGAN 44.1 kHz vocoder (openvpi release): natural-log mel [128, T] + f0 [T] -> waveform [T * 512].

The released checkpoint is a folder holding ``model`` (or ``model.ckpt``) = ``{"generator": state_dict}`` and a
``config.json``. Its convolutions are stored in the old weight-norm form (``<name>.weight_g`` / ``<name>.weight_v``).
We never run weight norm at inference: :func:`fold_weight_norm` turns every (g, v) pair into one plain ``weight``
once, at load time, so the network below is made of ordinary ``Conv1d`` / ``ConvTranspose1d`` layers whose module
names are the checkpoint's (``conv_pre``, ``ups.i``, ``resblocks.i.convs1.j``, ``noise_convs.i``, ``m_source.l_linear``,
``conv_post``).

Speed (see benchmarks/results_vocoder.md): besides the folded weights, inference runs under
``torch.inference_mode`` with in-place activations; on CPU the filter network runs as channels-last 2-D
convolutions (oneDNN's fast layout, ``ChannelsLastFilter``); the harmonic source is built frame-wise (one phase
ramp per frame) once for the whole input; and the filter network runs on overlapping chunks whose overlap covers
its receptive field, so results equal the one-pass output while memory stays bounded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.checkpoints import key_mismatch, safe_load
from core.config import AUDIO, load_json
from core.errors import CheckpointError, MissingPretrainedError, Remedy
from core.pretrained import NSF_HIFIGAN_DIR, require

MODEL_FILE_NAMES = ("model", "model.ckpt")
CONFIG_FILE_NAME = "config.json"
# Filter-network chunk (frames, ~3 s): the overlap costs ~13% more convolution work, but the smaller working set
# is cache- and allocator-friendly, so it is as fast as one pass on CPU and needs ~1/3 of the memory for 30 s.
DEFAULT_CHUNK_FRAMES = 256

# Slopes fixed by the released network: 0.1 inside, the torch default 0.01 before conv_post.
LRELU_SLOPE = 0.1
FINAL_LRELU_SLOPE = 0.01
# Harmonic source constants of the released model.
N_HARMONICS = 9  # fundamental + 8 overtones
SINE_AMP = 0.1
NOISE_STD = 0.003


@dataclass(frozen=True)
class VocoderConfig:
    """The generator's hyperparameters as read from ``config.json`` (unknown keys are ignored).

    Field names are the release's keys; the defaults are the 44.1 kHz / hop 512 / 128-bin release (= ``AUDIO``).
    """

    sampling_rate: int = AUDIO.sample_rate  # Hz of the output; the harmonic source's phase advance depends on it
    num_mels: int = AUDIO.n_mels  # mel bins of the input (conv_pre's input channels)
    hop_size: int = AUDIO.hop_length  # output samples per mel frame; must equal the product of upsample_rates
    # The mel analysis the vocoder was trained on: not read by the network, kept so a config can be compared
    # with the mel that core.features.mel computes.
    n_fft: int = AUDIO.n_fft
    win_size: int = AUDIO.win_length
    fmin: float = AUDIO.fmin
    fmax: float = AUDIO.fmax
    upsample_rates: tuple[int, ...] = (8, 8, 2, 2, 2)  # stride of each transposed-convolution stage
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 4, 4, 4)  # kernel of each stage (same length as the rates)
    upsample_initial_channel: int = 512  # channels after conv_pre; halved at every stage
    resblock: str = "1"  # HiFiGAN residual block type; only "1" is supported
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)  # the parallel residual blocks of each stage
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = field(default=((1, 3, 5), (1, 3, 5), (1, 3, 5)))
    mini_nsf: bool = False  # openvpi's mini-NSF variant of the source network: refused (not supported)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config.json") -> VocoderConfig:
        """Build from a released ``config.json`` dict; raises CheckpointError for a model we cannot run."""
        try:
            cfg = cls(
                sampling_rate=int(data.get("sampling_rate", cls.sampling_rate)),
                num_mels=int(data.get("num_mels", cls.num_mels)),
                hop_size=int(data.get("hop_size", cls.hop_size)),
                n_fft=int(data.get("n_fft", cls.n_fft)),
                win_size=int(data.get("win_size", cls.win_size)),
                fmin=float(data.get("fmin", cls.fmin)),
                fmax=float(data.get("fmax", cls.fmax)),
                upsample_rates=tuple(int(v) for v in data.get("upsample_rates", cls.upsample_rates)),
                upsample_kernel_sizes=tuple(
                    int(v) for v in data.get("upsample_kernel_sizes", cls.upsample_kernel_sizes)
                ),
                upsample_initial_channel=int(data.get("upsample_initial_channel", cls.upsample_initial_channel)),
                resblock=str(data.get("resblock", cls.resblock)),
                resblock_kernel_sizes=tuple(
                    int(v) for v in data.get("resblock_kernel_sizes", cls.resblock_kernel_sizes)
                ),
                resblock_dilation_sizes=tuple(
                    tuple(int(d) for d in ds) for ds in data.get("resblock_dilation_sizes", ((1, 3, 5),) * 3)
                ),
                mini_nsf=bool(data.get("mini_nsf") or False),
            )
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{source}: invalid NSF-HiFiGAN config ({e})") from None
        if cfg.resblock != "1":
            raise CheckpointError(f"{source}: resblock type {cfg.resblock!r} is not supported (only '1')")
        if cfg.mini_nsf:
            raise CheckpointError(f"{source}: mini_nsf vocoders are not supported")
        if math.prod(cfg.upsample_rates) != cfg.hop_size:
            raise CheckpointError(
                f"{source}: product of upsample_rates {list(cfg.upsample_rates)} must equal hop_size {cfg.hop_size}"
            )
        if len(cfg.upsample_rates) != len(cfg.upsample_kernel_sizes):
            raise CheckpointError(f"{source}: upsample_rates and upsample_kernel_sizes differ in length")
        if len(cfg.resblock_kernel_sizes) != len(cfg.resblock_dilation_sizes):
            raise CheckpointError(f"{source}: resblock_kernel_sizes and resblock_dilation_sizes differ in length")
        return cfg


# ----------------------------------------------------------------------------------------------------------------------
# state dict handling


def fold_weight_norm(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replace every weight-norm pair by its effective weight ``g * v / ||v||`` (norm over all dims but dim 0).

    Accepts the old names (``X.weight_g`` / ``X.weight_v``), the parametrization names
    (``X.parametrizations.weight.original0`` / ``original1``) and plain ``X.weight``. Computed in float64, stored
    float32, so folding adds no error beyond the final rounding.
    """

    out: dict[str, torch.Tensor] = {}
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        if key.endswith(".weight_g") or key.endswith(".weight_v"):
            base, part = key[: -len(".weight_g")], key[-1]
            pairs.setdefault(base, {})[part] = value
        elif key.endswith(".parametrizations.weight.original0") or key.endswith(".parametrizations.weight.original1"):
            base = key[: -len(".parametrizations.weight.original0")]
            pairs.setdefault(base, {})["g" if key.endswith("0") else "v"] = value
        else:
            out[key] = value
    for base, gv in pairs.items():
        if set(gv) != {"g", "v"}:
            missing = "weight_v" if "g" in gv else "weight_g"
            raise KeyError(f"{base}.{missing}")
        g, v = gv["g"].double(), gv["v"].double()
        dims = tuple(range(1, v.dim()))
        norm = v.pow(2).sum(dim=dims, keepdim=True).sqrt()
        out[base + ".weight"] = (g * v / norm).float()
    return out


# ----------------------------------------------------------------------------------------------------------------------
# network


class HarmonicSource(nn.Module):
    """Sine source of the NSF model: 9 harmonics of f0 -> one excitation channel via ``l_linear`` + tanh."""

    def __init__(self, sampling_rate: int, hop: int) -> None:
        super().__init__()
        self.sampling_rate = sampling_rate
        self.hop = hop
        self.l_linear = nn.Linear(N_HARMONICS, 1)
        self.register_buffer("ramp", torch.arange(1, hop + 1, dtype=torch.float32), persistent=False)
        self.register_buffer("harmonics", torch.arange(1, N_HARMONICS + 1, dtype=torch.float32), persistent=False)

    def phase(self, f0: torch.Tensor) -> torch.Tensor:
        """Phase in cycles of the fundamental, ``[B, T * hop]``, continuous across frames.

        Built per frame: a linear ramp inside each frame plus the wrapped accumulated advance of all previous
        frames (kept in [-1, 1) with fmod so float32 never loses precision on long audio).
        """
        rad = (f0 / self.sampling_rate).unsqueeze(-1) * self.ramp  # [B, T, hop]
        advance = torch.fmod(rad[:, :, -1] + 0.5, 1.0) - 0.5  # [B, T]
        acc = torch.fmod(torch.cumsum(advance, dim=1), 1.0)
        rad[:, 1:, :] += acc[:, :-1, None]
        return rad.reshape(f0.shape[0], -1)

    def forward(
        self, f0: torch.Tensor, deterministic: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """f0 ``[B, T]`` Hz -> har ``[B, 1, T * hop]``.

        Random draws, in upstream order: ``rand(1, 1, 9)`` initial phases (first one zeroed), then
        ``randn`` noise ``[B, L, 9]``; with ``deterministic`` both are zero.
        """
        batch = f0.shape[0]
        rad = self.phase(f0).unsqueeze(-1) * self.harmonics  # [B, L, 9]
        if not deterministic:
            rand_ini = torch.rand(1, 1, N_HARMONICS, generator=generator, device=f0.device, dtype=rad.dtype)
            rand_ini[:, :, 0] = 0
            rad = rad + rand_ini
        sines = torch.sin(rad * (2 * math.pi)) * SINE_AMP
        uv = (f0 > 0).to(sines.dtype).repeat_interleave(self.hop, dim=1).unsqueeze(-1)  # [B, L, 1]
        if deterministic:
            s = sines * uv
        else:
            noise_amp = uv * NOISE_STD + (1 - uv) * (SINE_AMP / 3)
            noise = torch.randn(sines.shape, generator=generator, device=f0.device, dtype=sines.dtype)
            s = sines * uv + noise_amp * noise
        har = torch.tanh(self.l_linear(s))  # [B, L, 1]
        return har.reshape(batch, 1, -1)


class ResBlock(nn.Module):
    """HiFiGAN ResBlock "1": three (dilated conv, conv) pairs with residual connections."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=d * (kernel_size - 1) // 2)
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, padding=(kernel_size - 1) // 2) for _ in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            xt = c1(F.leaky_relu(x, LRELU_SLOPE))
            xt = c2(F.leaky_relu_(xt, LRELU_SLOPE))
            x = xt.add_(x)
        return x


class Generator(nn.Module):
    """The NSF-HiFiGAN generator with plain (already folded) convolution weights."""

    def __init__(self, cfg: VocoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.hop = cfg.hop_size
        self.m_source = HarmonicSource(cfg.sampling_rate, cfg.hop_size)
        ch0 = cfg.upsample_initial_channel
        self.conv_pre = nn.Conv1d(cfg.num_mels, ch0, 7, padding=3)
        self.ups = nn.ModuleList()
        self.noise_convs = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        n_up = len(cfg.upsample_rates)
        for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes, strict=True)):
            ch = ch0 // (2 ** (i + 1))
            self.ups.append(nn.ConvTranspose1d(2 * ch, ch, k, stride=u, padding=(k - u) // 2))
            if i + 1 < n_up:
                s = math.prod(cfg.upsample_rates[i + 1 :])
                self.noise_convs.append(nn.Conv1d(1, ch, kernel_size=2 * s, stride=s, padding=s // 2))
            else:
                self.noise_convs.append(nn.Conv1d(1, ch, kernel_size=1))
            for rk, rd in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes, strict=True):
                self.resblocks.append(ResBlock(ch, rk, rd))
        self.conv_post = nn.Conv1d(ch0 // (2**n_up), 1, 7, padding=3)
        self.num_kernels = len(cfg.resblock_kernel_sizes)

    def filter(self, mel: torch.Tensor, har: torch.Tensor) -> torch.Tensor:
        """mel ``[B, n_mels, T]`` + excitation ``[B, 1, T * hop]`` -> waveform ``[B, 1, T * hop]``."""
        x = self.conv_pre(mel)
        for i, (up, noise_conv) in enumerate(zip(self.ups, self.noise_convs, strict=True)):
            x = up(F.leaky_relu_(x, LRELU_SLOPE))
            x = x.add_(noise_conv(har))
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            xs = blocks[0](x)
            for block in blocks[1:]:
                xs = xs.add_(block(x))
            x = xs.div_(self.num_kernels)
        x = self.conv_post(F.leaky_relu_(x, FINAL_LRELU_SLOPE))
        return torch.tanh_(x)

    def forward(
        self,
        mel: torch.Tensor,
        f0: torch.Tensor,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        har = self.m_source(f0, deterministic=deterministic, generator=generator)
        return self.filter(mel, har)


class ChannelsLastFilter:
    """The filter network re-laid for speed: every 1-D convolution runs as a 2-D one on ``[B, C, 1, L]``.

    With the channels-last layout oneDNN convolves without reordering activations on every call, which
    is about 1.3x faster overall on x86 CPUs (stages narrower than ``min_channels_last`` channels can keep
    the plain layout; measured, all stages gain). Weights are copied once here.
    The arithmetic is the same as :meth:`Generator.filter` up to float32 summation order.
    """

    def __init__(self, gen: Generator, min_channels_last: int = 16) -> None:
        self.num_kernels = gen.num_kernels
        self.stages = []
        cl, plain = torch.channels_last, torch.contiguous_format
        fmt_pre = cl if gen.conv_pre.out_channels >= min_channels_last else plain
        self.pre = self._conv(gen.conv_pre, fmt_pre)
        self.pre_format = fmt_pre
        for i, (up, noise_conv) in enumerate(zip(gen.ups, gen.noise_convs, strict=True)):
            fmt = cl if up.out_channels >= min_channels_last else plain
            blocks = gen.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            self.stages.append(
                {
                    "format": fmt,
                    "up": (
                        up.weight.detach().unsqueeze(2).contiguous(memory_format=fmt),
                        up.bias.detach(),
                        (1, up.stride[0]),
                        (0, up.padding[0]),
                    ),
                    "noise": self._conv(noise_conv, fmt),
                    "blocks": [
                        [
                            (self._conv(c1, fmt), self._conv(c2, fmt))
                            for c1, c2 in zip(block.convs1, block.convs2, strict=True)
                        ]
                        for block in blocks
                    ],
                }
            )
        self.post = self._conv(gen.conv_post, plain)

    @staticmethod
    def _conv(conv, fmt):
        weight = conv.weight.detach().unsqueeze(2).contiguous(memory_format=fmt)
        return weight, conv.bias.detach(), (1, conv.stride[0]), (0, conv.padding[0]), (1, conv.dilation[0])

    @staticmethod
    def _apply(params, x):
        weight, bias, stride, padding, dilation = params
        return F.conv2d(x, weight, bias, stride=stride, padding=padding, dilation=dilation)

    def __call__(self, mel: torch.Tensor, har: torch.Tensor) -> torch.Tensor:
        har4 = har.unsqueeze(2)  # [B, 1, 1, L]
        x = self._apply(self.pre, mel.unsqueeze(2).contiguous(memory_format=self.pre_format))
        for stage in self.stages:
            fmt = stage["format"]
            x = F.leaky_relu_(x, LRELU_SLOPE).contiguous(memory_format=fmt)
            weight, bias, stride, padding = stage["up"]
            x = F.conv_transpose2d(x, weight, bias, stride=stride, padding=padding)
            x = x.add_(self._apply(stage["noise"], har4))
            total = None
            x_act = F.leaky_relu(x, LRELU_SLOPE)  # the first activation is the same for the parallel blocks
            for block in stage["blocks"]:
                y = x
                for j, (p1, p2) in enumerate(block):
                    t = self._apply(p1, x_act if j == 0 else F.leaky_relu(y, LRELU_SLOPE))
                    t = self._apply(p2, F.leaky_relu_(t, LRELU_SLOPE))
                    y = t.add_(y)
                total = y if total is None else total.add_(y)
            x = total.div_(self.num_kernels)
        x = F.leaky_relu_(x, FINAL_LRELU_SLOPE).contiguous()
        x = torch.tanh_(self._apply(self.post, x))
        return x.squeeze(2)


def build_generator(cfg: VocoderConfig) -> Generator:
    """A freshly initialised generator (plain weights) for ``cfg``."""
    return Generator(cfg)


def receptive_frames(cfg: VocoderConfig) -> int:
    """How many mel frames on each side can influence one output frame (a safe upper bound).

    Walks the network: at a stage running at ``rate`` samples per frame, a convolution with kernel ``k`` and
    dilation ``d`` reaches ``d * (k - 1) / 2`` samples, i.e. that many / ``rate`` frames, to each side; a
    transposed convolution reaches about ``k / stride`` input samples. The noise convolutions read the
    excitation, which is computed for the whole signal before chunking, so they need no context.
    """
    context = 3.0  # conv_pre (kernel 7) at 1 sample per frame
    rate = 1
    for u, k in zip(cfg.upsample_rates, cfg.upsample_kernel_sizes, strict=True):
        context += math.ceil(k / u) / rate
        rate *= u
        context += (
            max(
                sum(d * (rk - 1) // 2 + (rk - 1) // 2 for d in ds)
                for rk, ds in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes, strict=True)
            )
            / rate
        )
    context += 3 / rate  # conv_post
    return int(math.ceil(context)) + 2  # +2 frames of margin


# ----------------------------------------------------------------------------------------------------------------------
# public API


class NsfHifiGan:
    """Loaded vocoder. ``vocode(mel [n_mels, T], f0 [T]) -> wav [T * hop]`` (float32, in -1..1)."""

    def __init__(
        self, generator: Generator, cfg: VocoderConfig, device: str = "cpu", source: str = "", fast: bool = True
    ) -> None:
        self.generator = generator
        self.cfg = cfg
        self.device = str(device)
        self.source = source
        # The channels-last re-layout pays off on CPU (oneDNN); on GPUs the plain network is used as is.
        self._filter = generator.filter
        if fast and self.device == "cpu":
            self._filter = ChannelsLastFilter(generator)

    @property
    def sample_rate(self) -> int:
        return self.cfg.sampling_rate

    @property
    def hop_size(self) -> int:
        return self.cfg.hop_size

    # -- loading ----------------------------------------------------------------------------------------------------

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", fast: bool = True) -> NsfHifiGan:
        """Load a released vocoder: a folder holding ``model``/``model.ckpt`` + ``config.json``, or the model file.

        Raises :class:`CheckpointError` (one line naming the file) for a missing/corrupt file, a missing config,
        or a state dict that is not this vocoder's.
        """
        path = Path(path)
        if path.is_dir():
            model_path = next((path / n for n in MODEL_FILE_NAMES if (path / n).is_file()), None)
            if model_path is None:
                raise CheckpointError(f"{path}: no NSF-HiFiGAN weights file ('model' or 'model.ckpt') in this folder")
        else:
            model_path = path
        config_path = model_path.parent / CONFIG_FILE_NAME
        if not config_path.is_file():
            raise CheckpointError(
                f"{config_path}: missing config.json beside the NSF-HiFiGAN weights {model_path.name}"
            )
        try:
            config_data = load_json(config_path)
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{config_path}: unreadable config ({e})") from None
        if not isinstance(config_data, dict):
            raise CheckpointError(f"{config_path}: expected a JSON object")
        cfg = VocoderConfig.from_dict(config_data, source=str(config_path))
        ckpt = safe_load(model_path, map_location="cpu")
        state = ckpt.get("generator")
        if not isinstance(state, dict):
            found = ", ".join(sorted(map(str, ckpt))[:5]) or "nothing"
            raise CheckpointError(
                f"{model_path}: not an NSF-HiFiGAN checkpoint (expected a 'generator' state dict, found keys: {found})"
            )
        return cls.from_state_dict(state, cfg, device=device, source=str(model_path), fast=fast)

    @classmethod
    def from_state_dict(
        cls,
        state: dict,
        cfg: VocoderConfig | None = None,
        device: str = "cpu",
        source: str = "state dict",
        fast: bool = True,
    ) -> NsfHifiGan:
        """Build from a generator state dict (weight-norm or plain keys); checks keys and shapes exactly."""
        cfg = cfg or VocoderConfig()
        try:
            folded = fold_weight_norm({k: v for k, v in state.items() if isinstance(v, torch.Tensor)})
        except KeyError as e:
            raise CheckpointError(f"{source}: not an NSF-HiFiGAN generator (incomplete weight norm pair {e})") from None
        generator = build_generator(cfg)
        expected = generator.state_dict()
        mismatch = key_mismatch(expected, folded)
        if mismatch:
            raise CheckpointError(f"{source}: not an NSF-HiFiGAN generator for this config ({mismatch})")
        for k, v in expected.items():
            if tuple(folded[k].shape) != tuple(v.shape):
                raise CheckpointError(
                    f"{source}: weight {k} has shape {list(folded[k].shape)}, expected {list(v.shape)} "
                    "(config.json does not match the weights)"
                )
        generator.load_state_dict({k: v.float() for k, v in folded.items()})
        generator.eval().requires_grad_(False)
        generator.to(device)
        return cls(generator, cfg, device=device, source=source, fast=fast)

    @classmethod
    def from_pretrained(cls, device: str = "cpu", fast: bool = True) -> NsfHifiGan:
        """The vocoder in ``pretrained/nsf_hifigan/`` (``model`` or ``model.ckpt`` + ``config.json``)."""
        model_path = require(f"{NSF_HIFIGAN_DIR}/model", f"{NSF_HIFIGAN_DIR}/model.ckpt", download_name="nsf_hifigan")
        config_path = model_path.parent / CONFIG_FILE_NAME
        if not config_path.is_file():
            raise MissingPretrainedError(
                f"missing pretrained file {config_path}",
                remedy=Remedy("download", "nsf_hifigan", "or copy the config.json of the vocoder release there"),
            )
        return cls.from_checkpoint(model_path, device=device, fast=fast)

    # -- inference --------------------------------------------------------------------------------------------------

    def vocode(
        self,
        mel: np.ndarray,
        f0: np.ndarray,
        deterministic: bool = False,
        seed: int | None = None,
        chunk_frames: int | None = DEFAULT_CHUNK_FRAMES,
    ) -> np.ndarray:
        """Waveform ``[T * hop]`` float32 from a natural-log mel ``[n_mels, T]`` and f0 ``[T]`` in Hz (0 = unvoiced).

        ``deterministic``: zero initial phases and zero noise in the sine source (reproducible output).
        ``seed``: make the random source repeatable (same torch calls as upstream after ``manual_seed(seed)``).
        ``chunk_frames``: process the filter network in chunks of this many frames with enough overlap to give
        the same result as one pass (bounded memory for long songs); ``None`` = one pass.
        """
        mel = np.asarray(mel, dtype=np.float32)
        f0 = np.asarray(f0, dtype=np.float32).reshape(-1)
        if mel.ndim != 2 or mel.shape[0] != self.cfg.num_mels:
            raise ValueError(f"mel must be [{self.cfg.num_mels}, T], got {list(mel.shape)}")
        if f0.shape[0] != mel.shape[1]:
            raise ValueError(f"f0 has {f0.shape[0]} frames but mel has {mel.shape[1]}")
        if mel.shape[1] == 0:
            return np.zeros(0, dtype=np.float32)
        generator = None
        if seed is not None and not deterministic:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(int(seed))
        with torch.inference_mode():
            mel_t = torch.from_numpy(np.ascontiguousarray(mel))[None].to(self.device)
            f0_t = torch.from_numpy(f0)[None].to(self.device)
            wav = self.vocode_tensor(
                mel_t, f0_t, deterministic=deterministic, generator=generator, chunk_frames=chunk_frames
            )
        return wav[0, 0].float().cpu().numpy()

    def vocode_tensor(
        self,
        mel: torch.Tensor,
        f0: torch.Tensor,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
        chunk_frames: int | None = DEFAULT_CHUNK_FRAMES,
    ) -> torch.Tensor:
        """Batched: mel ``[B, n_mels, T]``, f0 ``[B, T]`` (same device) -> ``[B, 1, T * hop]``."""
        with torch.inference_mode():
            har = self.generator.m_source(f0.float(), deterministic=deterministic, generator=generator)
            frames = mel.shape[-1]
            if not chunk_frames or frames <= chunk_frames:
                return self._filter(mel.float(), har)
            hop = self.cfg.hop_size
            pad = receptive_frames(self.cfg)
            pieces = []
            for start in range(0, frames, chunk_frames):
                stop = min(frames, start + chunk_frames)
                lo, hi = max(0, start - pad), min(frames, stop + pad)
                out = self._filter(mel[..., lo:hi].float(), har[..., lo * hop : hi * hop])
                pieces.append(out[..., (start - lo) * hop : (stop - lo) * hop])
            return torch.cat(pieces, dim=-1)
