"""Configuration dataclasses and the one source of truth for the audio spec.

The audio spec is the openvpi NSF-HiFiGAN 44.1 kHz convention, shared by the Diffusion-SVC and
DDSP-SVC pretrained bases, so their checkpoints load unchanged.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from core.fsutil import atomic_write_text

T = TypeVar("T")


@dataclass(frozen=True)
class AudioSpec:
    """The audio and mel conventions every stage shares (read as ``AUDIO``): dataset, extract, train, convert."""

    sample_rate: int = 44100  # Hz of the training chunks (0_gt_wavs), the mel and the vocoder's output
    n_fft: int = 2048  # STFT size (samples) of the mel (core.features.mel)
    win_length: int = 2048  # STFT window (samples); also the loudness (volume) window
    hop_length: int = 512  # samples per frame: the one frame grid of mel, F0, volume and content features
    n_mels: int = 128  # mel bins the decoder predicts and the vocoder reads
    fmin: float = 40.0  # Hz, lowest mel filter edge
    fmax: float = 16000.0  # Hz, highest mel filter edge
    log_clamp: float = 1e-5  # mel magnitudes are clamped to this before the natural log (silence = ln 1e-5)
    content_sample_rate: int = 16000  # the content encoder's input rate
    content_hop: int = 320  # 50 frames/s at 16 kHz


AUDIO = AudioSpec()


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as a JSON-ready dict."""
    return dataclasses.asdict(obj)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build dataclass ``cls`` from ``data``, ignoring unknown keys (older/newer config files)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})


def save_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename) so a crash never leaves half a file."""
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def load_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)
