"""Builders of small stand-in models for conversion tests: a voice model trained on real speech.

STAND-INS, not the released weights (they cannot be downloaded here):
* content encoder: a fairseq-layout HuBERT checkpoint with the real 12 x 768 layout but thin convolutions and
  feed-forward layers (random weights), loaded by the real ContentVec loader;
* F0: FCPE with its real weights (they ship in the torchfcpe wheel);
* vocoder: an NSF-HiFiGAN generator with the released upsampling (hop 512) but few channels and one
  resblock (random weights), saved like the release (``model`` = {"generator": sd} + ``config.json``);
* decoder: the real ``tiny`` preset trained briefly by the real Train stage on LJSpeech chunks whose
  features come from the real Extract stage with the two models above.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np

from tests.conftest import REAL

SR = 44100
LJSPEECH = REAL / "speech_ljspeech"

SMALL_VOCODER_CONFIG = {
    "resblock": "1",
    "upsample_rates": [8, 8, 2, 2, 2],
    "upsample_kernel_sizes": [16, 16, 4, 4, 4],
    "upsample_initial_channel": 64,
    "resblock_kernel_sizes": [3],
    "resblock_dilation_sizes": [[1, 3]],
    "sampling_rate": 44100,
    "num_mels": 128,
    "hop_size": 512,
    "n_fft": 2048,
    "win_size": 2048,
    "fmin": 40,
    "fmax": 16000,
    "mini_nsf": False,
}


def write_small_content_encoder(path: Path, seed: int = 0) -> Path:
    """A HuBERT-base-layout checkpoint (12 layers, 768-d output) with thin conv/FFN layers: builds and runs fast,
    and the loader reads its hyperparameters from ``cfg`` exactly as for the released file."""
    import torch

    from core.features.hubert import HubertBase, HubertConfig

    conv = "[(32,10,5)] + [(32,3,2)] * 4 + [(32,2,2)] * 2"
    cfg = HubertConfig(conv_layers=((32, 10, 5),) + ((32, 3, 2),) * 4 + ((32, 2, 2),) * 2, ffn_dim=64,
                       pos_conv_kernel=16)  # fmt: skip
    torch.manual_seed(seed)
    state = {k: v.clone() for k, v in HubertBase(cfg).state_dict().items()}
    model_cfg = {"_name": "hubert", "extractor_mode": "default", "encoder_layers": 12, "encoder_embed_dim": 768,
                 "encoder_ffn_embed_dim": 64, "encoder_attention_heads": 12, "conv_feature_layers": conv,
                 "conv_bias": False, "final_dim": 256, "layer_norm_first": False, "conv_pos": 16,
                 "conv_pos_groups": 16}  # fmt: skip
    container = {"args": None, "cfg": {"model": model_cfg, "task": {"normalize": False, "sample_rate": 16000}},
                 "model": state}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(container, path)
    return path


def write_small_vocoder(folder: Path, seed: int = 0) -> Path:
    """``folder/model`` + ``folder/config.json`` shaped like the NSF-HiFiGAN release, with few channels."""
    import torch

    from core.vocoder import VocoderConfig, build_generator

    torch.manual_seed(seed)
    generator = build_generator(VocoderConfig.from_dict(SMALL_VOCODER_CONFIG))
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"generator": {k: v.clone() for k, v in generator.state_dict().items()}}, folder / "model")
    (folder / "config.json").write_text(json.dumps(SMALL_VOCODER_CONFIG, indent=1), encoding="utf-8")
    return folder


def build_small_pretrained(root: Path) -> Path:
    """A pretrained root with the small content encoder and the small vocoder (FCPE needs no file)."""
    write_small_content_encoder(root / "content" / "hubert_base.pt")
    write_small_vocoder(root / "nsf_hifigan")
    return root


def ljspeech_chunks(n_files: int, max_seconds: float, skip: int = 0) -> list[tuple[str, np.ndarray]]:
    """(name, 44.1 kHz mono) of LJSpeech clips, cut to ``max_seconds``."""
    import soundfile as sf
    import soxr

    out = []
    for path in sorted(LJSPEECH.glob("*.wav"))[skip : skip + n_files]:
        wav, sr = sf.read(path, dtype="float32")
        out.append((path.stem, soxr.resample(wav, sr, SR)[: int(max_seconds * SR)].astype(np.float32)))
    return out


def write_dataset(exp, chunks: list[tuple[str, np.ndarray]]) -> None:
    """Write chunks the way the Dataset stage does (44.1 kHz and 16 kHz copies, PCM 16)."""
    import soundfile as sf
    import soxr

    exp.gt_wavs.mkdir(parents=True, exist_ok=True)
    exp.wavs16k.mkdir(parents=True, exist_ok=True)
    for name, wav in chunks:
        sf.write(exp.gt_wavs / f"{name}.wav", wav, SR, subtype="PCM_16")
        sf.write(exp.wavs16k / f"{name}.wav", soxr.resample(wav, SR, 16000), 16000, subtype="PCM_16")


def build_voice_model(exp, n_files: int = 12, max_seconds: float = 5.0, steps: int = 300, save_every: int = 100,
                      f0_method: str = "fcpe", n_chans: int = 64, n_layers: int = 4, lr: float = 5e-3) -> None:  # fmt: skip
    """Dataset chunks -> real Extract (F0 by ``f0_method``, stand-in content) -> decoder trained by core.train.

    ``n_chans`` x ``n_layers`` other than the ``tiny`` preset (64 x 4) start from a freshly initialised
    checkpoint passed as ``--base`` (the Train stage only knows the presets when training from scratch).
    """
    import dataclasses

    import torch

    from core.features.extract import ExtractConfig, run_extract
    from core.model import CHECKPOINT_FORMAT, SvcDecoder
    from core.model.config import DecoderConfig
    from core.train import TrainConfig, train

    write_dataset(exp, ljspeech_chunks(n_files, max_seconds))
    run_extract(exp.name, ExtractConfig(f0_method=f0_method, device="cpu"), extractors=training_extractors(f0_method))
    base = None
    if (n_chans, n_layers) != (64, 4):
        torch.manual_seed(0)
        cfg = DecoderConfig(n_chans=n_chans, n_layers=n_layers)
        base = exp.root / "init.pt"
        torch.save({"format": CHECKPOINT_FORMAT, "version": 1, "model": SvcDecoder(cfg).state_dict(),
                    "config": dataclasses.asdict(cfg), "stats": {}}, base)  # fmt: skip
    cfg = TrainConfig(model="tiny", base=str(base) if base else None, device="cpu", batch_size=8, crop_frames=64,
                      threads=1, warmup_steps=20, log_every=50, lr=lr, steps=steps, save_every=save_every,
                      val_chunks=2)  # fmt: skip
    train(exp, cfg)
    if base is not None:
        base.unlink()


def logmel_projection_content(dim: int = 768, seed: int = 0):
    """STAND-IN content units: a fixed random projection of a 16 kHz log-mel at ContentVec's 50 frames/s.

    Used for training the tiny test decoder: units of a random-weight HuBERT carry too little a tiny decoder can
    learn from in a few hundred steps, and the sampler comparison needs a decoder that has learned something.
    """
    import librosa

    proj = np.random.default_rng(seed).standard_normal((80, dim)).astype(np.float32) / np.sqrt(80)
    basis = librosa.filters.mel(sr=16000, n_fft=1024, n_mels=80)

    def content(wav16k: np.ndarray) -> np.ndarray:
        frames = max(1, (wav16k.size - 400) // 320 + 1)
        spec = np.abs(librosa.stft(np.asarray(wav16k, dtype=np.float32), n_fft=1024, hop_length=320, center=True))
        logmel = np.log(np.maximum(basis @ spec[:, :frames], 1e-5)).T  # [frames, 80]
        return ((logmel + 5.0) / 3.0) @ proj

    return content


def training_extractors(f0_method: str = "fcpe"):
    """The real extractors (F0, loudness, mel, alignment) with the log-mel-projection content stand-in."""
    from dataclasses import replace

    from core.features.extract import ExtractConfig, default_extractors

    real = default_extractors(ExtractConfig(f0_method=f0_method, device="cpu"), "cpu")
    return replace(real, content=lambda: logmel_projection_content(), preflight=lambda groups: None)


def sampler_mel_errors(exp, settings: list[tuple[str, int]], seeds: int = 2, ckpt: str = "best.pt",
                       max_frames: int = 400) -> dict[tuple[str, int], float]:  # fmt: skip
    """Mean L1 error (natural-log mel) of each (sampler, steps) vs the ground-truth mel of the held-out chunks.

    The held-out chunks are the ones the Train stage validated on (``val_chunks`` of the newest step checkpoint);
    the sampled mel is clamped to the model's range exactly as conversion does (core.convert.decode_piece).
    """
    import torch

    from core.checkpoint_store import step_checkpoints
    from core.features.store import load_features
    from core.model import SvcDecoder
    from core.model.samplers import sample

    val = torch.load(step_checkpoints(exp)[-1][1], weights_only=True)["val_chunks"]
    dec = SvcDecoder.from_checkpoint(exp.checkpoints / ckpt)
    errors: dict[tuple[str, int], list[float]] = {s: [] for s in settings}
    for name in val:
        f = load_features(exp, name)
        t = min(max_frames, f["mel"].shape[1])
        with torch.inference_mode():
            cond = dec.condition(torch.from_numpy(f["units"][:t])[None], torch.from_numpy(f["f0_continuous"][:t])[None, :, None],
                                 torch.from_numpy(f["volume"][:t])[None, :, None])  # fmt: skip
        for sampler, steps in settings:
            for seed in range(seeds):
                x = sample(dec.denoise, cond, (1, 1, dec.config.n_mels, t), sampler=sampler, steps=steps, seed=seed,
                           betas=dec.betas)  # fmt: skip
                mel = dec.denorm_spec(x.clamp(-1.0, 1.0))[0, 0].numpy()
                errors[(sampler, steps)].append(float(np.abs(mel - f["mel"][:, :t]).mean()))
    return {s: float(np.mean(v)) for s, v in errors.items()}


_SHARED_VOICE: dict[str, Path] = {}


def shared_voice_roots(tmp_path_factory) -> tuple[Path, Path]:
    """(logs root, pretrained root) of one voice model per test process, shared by the convert test modules."""
    import torch

    from core.experiment import Experiment

    if not _SHARED_VOICE:
        root = tmp_path_factory.mktemp("convert_voice")
        logs, pretrained = root / "logs", build_small_pretrained(root / "pretrained")
        before = {k: os.environ.get(k) for k in ("SVCOVER_LOGS", "SVCOVER_PRETRAINED")}
        threads = torch.get_num_threads()
        os.environ["SVCOVER_LOGS"], os.environ["SVCOVER_PRETRAINED"] = str(logs), str(pretrained)
        try:
            build_voice_model(Experiment.open("voice"), steps=300, save_every=100)
        finally:
            torch.set_num_threads(threads)  # train(threads=1) changes the process setting
            for k, v in before.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        _SHARED_VOICE.update(logs=logs, pretrained=pretrained)
    return _SHARED_VOICE["logs"], _SHARED_VOICE["pretrained"]


# ------------------------------------------------------------------------------ hostile and foreign pickles


class TouchPayload:
    """Pickles to ``os.system("touch MARKER")``: what a malicious community .pth does when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


FAIRSEQ_MODULES = ("fairseq", "fairseq.data", "fairseq.data.dictionary")


def save_with_fairseq_dictionary(path: Path, container: dict, **label_fields: Any) -> Path:
    """``torch.save`` ``container`` plus ``task_state = {"dictionaries": [labels]}``, where ``labels`` pickles as
    fairseq's ``fairseq.data.dictionary.Dictionary`` (attributes ``label_fields``) like a real HuBERT/ContentVec
    checkpoint, without fairseq: a stand-in class takes that name in ``sys.modules`` for the save only."""
    import torch

    fake = type("Dictionary", (), {})
    fake.__module__, fake.__qualname__ = "fairseq.data.dictionary", "Dictionary"
    modules = {name: types.ModuleType(name) for name in FAIRSEQ_MODULES}
    modules["fairseq.data.dictionary"].Dictionary = fake
    labels = fake()
    labels.__dict__.update(label_fields)
    saved = {name: sys.modules[name] for name in FAIRSEQ_MODULES if name in sys.modules}
    try:
        sys.modules.update(modules)
        torch.save({**container, "task_state": {"dictionaries": [labels]}}, path)
    finally:
        for name in FAIRSEQ_MODULES:
            if name in saved:
                sys.modules[name] = saved[name]
            else:
                sys.modules.pop(name, None)
    return path


def write_fairseq_content_encoder(path: Path) -> None:
    """The small HuBERT stand-in re-saved the way fairseq does: ``args`` Namespace and a label Dictionary."""
    import torch

    write_small_content_encoder(path)
    container = torch.load(path, weights_only=True)
    container["args"] = argparse.Namespace(task="hubert_pretraining", label_rate=50, normalize=False)
    save_with_fairseq_dictionary(path, container, symbols=["<s>", "<pad>", "</s>", "<unk>", "0", "1"], bos_index=0)


def write_voice_checkpoint(path: Path, seed: int) -> None:
    """A training checkpoint with things that need the allow-list: numpy scalars and arrays."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    torch.save({"format": "svcover-decoder", "step": seed, "model": {"w": torch.randn(16, 8, generator=gen)},
                "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4}]},
                "rng": {"data": np.random.default_rng(seed).bit_generator.state},
                "stats": {"f0_mean": np.float32(200.0 + seed), "hist": np.arange(4, dtype=np.int64)},
                "counts": collections.OrderedDict(a=1)}, path)  # fmt: skip
