"""Tiny Mel-Band Roformer checkpoints built from audio-separator's own model class, plus their yaml.

The network is audio-separator's ``MelBandRoformer`` at small dimensions (dim 16, depth 1, 8 mel
bands, 512-point STFT), so the real MDXC code path runs end to end: config normalisation, the
Roformer loader (through svcover's safe_load), STFT, band split, time/frequency transformers, mask
estimation, iSTFT and overlap-add. Transformer and band-split weights stay random; only the last
layer of each band's mask estimator is set so that the mask is 1 for bands whose frequencies are at
or above ``cutoff_hz`` and 0 below (whatever the transformer outputs), which makes the "vocal" stem
a known high-pass of the input, as the MDX stand-in in ``tests/tiny_uvr.py`` does.

Registered the way audio-separator finds Roformers: by name in ``download_checks.json``'s
``roformer_download_list`` (checkpoint -> yaml).
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.tiny_uvr import EMPTY_DOWNLOAD_LISTS

SAMPLE_RATE = 44100
N_FFT = 512
HOP = 128
SEGMENT_FRAMES = 128  # 16,256 samples (0.37 s) per model segment: many segments, fast


def tiny_config(stems: tuple[str, str], target: str) -> dict:
    """The yaml content, in the layout of audio-separator's Roformer configs."""
    return {
        "audio": {"chunk_size": HOP * (SEGMENT_FRAMES - 1), "dim_f": N_FFT // 2, "dim_t": SEGMENT_FRAMES,
                  "hop_length": HOP, "n_fft": N_FFT, "num_channels": 2, "sample_rate": SAMPLE_RATE,
                  "min_mean_abs": 0.0},
        "model": {"dim": 16, "depth": 1, "stereo": True, "num_stems": 1, "time_transformer_depth": 1,
                  "freq_transformer_depth": 1, "num_bands": 8, "dim_head": 8, "heads": 2, "attn_dropout": 0.0,
                  "ff_dropout": 0.0, "flash_attn": False, "dim_freqs_in": N_FFT // 2 + 1, "sample_rate": SAMPLE_RATE,
                  "stft_n_fft": N_FFT, "stft_hop_length": HOP, "stft_win_length": N_FFT, "stft_normalized": False,
                  "mask_estimator_depth": 1, "mlp_expansion_factor": 1},
        "training": {"instruments": list(stems), "target_instrument": target},
        "inference": {"batch_size": 1, "dim_t": SEGMENT_FRAMES, "num_overlap": 2},
    }  # fmt: skip


def build_tiny_roformer(path: Path, config: dict, cutoff_hz: float, seed: int = 0):  # noqa: ANN201 - a torch module
    """Write the checkpoint (a plain state dict, as published Roformers are) and return the model."""
    import torch
    from audio_separator.separator.uvr_lib_v5.roformer.mel_band_roformer import MelBandRoformer

    torch.manual_seed(seed)
    model = MelBandRoformer(**config["model"])
    channels = 2
    freqs_per_band = model.freqs_per_band  # [bands, freqs] bool
    with torch.no_grad():
        for band, mlp in enumerate(model.mask_estimators[0].to_freqs):
            last = [m for m in mlp.modules() if isinstance(m, torch.nn.Linear)][-1]
            dim_in = last.out_features // 2  # GLU: first half values, second half gates
            freqs = torch.nonzero(freqs_per_band[band]).flatten()
            values = torch.zeros(dim_in)
            # band entries are (freq, channel) pairs, each a (real, imaginary) mask value
            for j, f in enumerate(freqs.repeat_interleave(channels).tolist()):
                if f * SAMPLE_RATE / N_FFT >= cutoff_hz:
                    values[2 * j] = 1.0
            last.weight.zero_()
            last.bias.copy_(torch.cat([values, torch.full((dim_in,), 30.0)]))  # sigmoid(30) = 1
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model


def install_tiny_roformer(uvr_dir: Path, name: str, cutoff_hz: float = 1000.0,
                          stems: tuple[str, str] = ("vocals", "other"), target: str | None = None) -> Path:  # fmt: skip
    """Build ``name`` (.ckpt) and ``<name>.yaml`` in ``uvr_dir`` and register them in the metadata files.

    ``stems``/``target``: the model's training instruments and target (``target`` defaults to the
    first), e.g. ``("noreverb", "reverb")`` for a de-reverb model.
    """
    import yaml

    config = tiny_config(stems, target or stems[0])
    ckpt = uvr_dir / name
    build_tiny_roformer(ckpt, config, cutoff_hz)
    config_name = f"{Path(name).stem}.yaml"
    (uvr_dir / config_name).write_text(yaml.safe_dump(config), encoding="utf-8")
    checks_path = uvr_dir / "download_checks.json"
    checks = json.loads(checks_path.read_text()) if checks_path.exists() else {k: {} for k in EMPTY_DOWNLOAD_LISTS}
    checks["roformer_download_list"][f"Roformer Model: svcover tiny {name}"] = {name: config_name}
    checks_path.write_text(json.dumps(checks))
    for meta in ("mdx_model_data.json", "vr_model_data.json"):
        if not (uvr_dir / meta).exists():
            (uvr_dir / meta).write_text("{}")
    return ckpt
