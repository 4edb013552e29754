"""The Train stage: fit the diffusion decoder on one experiment's features. One loop, top to bottom.

The command line (``python -m core train``, also under torchrun for DDP) is :mod:`core.cli.train`.

Order of operations (see :func:`train`): read features -> split a few chunks off for validation ->
build the model (from ``--base``, from scratch, or from the newest checkpoint of a previous run of the
same experiment) -> loop: random crops, AdamW step under mixed precision, log ``metrics.jsonl`` and
TensorBoard, validate and save every ``--save-every`` steps -> final save.

Everything a resume needs lives in ``checkpoints/step_<N>.pt`` (model, optimizer, loss scaler, step,
RNG states, configs, dataset stats); the learning-rate schedule is a pure function of the step and the
config, so the step is its whole state. Files are written atomically, the 10 newest step checkpoints
are kept, plus ``best.pt`` (lowest validation loss) and ``export/`` (fp16 safetensors + model card).
A ``stop`` file in the experiment folder (the UI's Stop button), SIGTERM or Ctrl+C make the loop save
and exit cleanly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core import pretrained
from core.checkpoint_store import step_checkpoints
from core.checkpoints import safe_load, save_checkpoint
from core.config import load_json, save_json
from core.dataset import build_dataset
from core.device import Device, pick_device
from core.errors import CheckpointError, NothingToDoError, Remedy, SvcoverError
from core.experiment import Experiment, visible_files
from core.features.extract import ExtractConfig, run_extract
from core.features.store import list_feature_chunks, load_features, load_stats
from core.fsutil import atomic_path, atomic_write_text, portable_label
from core.model.config import PRESETS, preset
from core.model.samplers import sample
from core.progress import ProgressFn, report, scaled
from core.voicemodel import export_decoder

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from core.model.decoder import SvcDecoder

log = logging.getLogger(__name__)

KEEP_STEP_CHECKPOINTS = 10
# Mixed-precision modes (TrainConfig.precision, --precision): auto = bf16/fp16 on CUDA, fp32 on CPU.
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
STOP_FILE_NAME = "stop"  # logs/<exp>/stop: ask a running training to save and exit
# Test hook: seconds to pause after a checkpoint's temp file is written and before it is renamed,
# so a test can kill the process in the middle of a save. Never set by users.
PAUSE_IN_SAVE_ENV = "SVCOVER_TEST_PAUSE_IN_SAVE"


class TrainingDivergedError(SvcoverError):
    """The loss became NaN/inf and training stopped; the last good checkpoint is kept."""


@dataclass
class TrainConfig:
    """Settings of one training run (the ``python -m core train`` flags)."""

    model: str = "default"  # architecture preset when training from scratch: default (512 x 20) | tiny
    base: str | None = None  # a Diffusion-SVC model_*.pt / our checkpoint to fine-tune from; "pretrained" = the downloaded base
    steps: int = 20000  # train until this optimizer step
    save_every: int = 1000  # validate + checkpoint every K steps
    log_every: int = 10
    batch_size: int | str = 32  # crops per optimizer step (per process); "auto" probes the GPU (fits 6 GB: docs/train.md)
    grad_accum: int = 1  # micro-batches per optimizer step
    crop_frames: int = 172  # 2 s at 44.1 kHz / hop 512 (upstream's crop length)
    lr: float = 2e-4  # upstream's fine-tuning LR
    weight_decay: float = 0.01  # AdamW default
    warmup_steps: int = 100
    lr_half_life: int = 100000  # LR halves every this many steps (smooth version of upstream's StepLR)
    grad_clip: float = 10.0  # only catches spikes; upstream does not clip
    precision: str = "auto"  # one of PRECISIONS: auto (bf16/fp16 on CUDA, fp32 on CPU) | fp32 | fp16 | bf16
    grad_checkpointing: bool = False  # recompute activations in backward: less memory, ~30% slower
    val_chunks: int = 4  # held-out chunks (fewer for tiny datasets)
    val_max_frames: int = 400  # validation crops (frames) per chunk
    max_bad_steps: int = 10  # consecutive NaN/inf losses before the run stops
    seed: int = 1234
    device: str = Device.AUTO
    threads: int = 0  # CPU threads for torch (0 = torch's default); 1 is fastest on a busy machine

    def validate(self) -> TrainConfig:
        if self.model not in PRESETS:
            raise SvcoverError(f"unknown --config {self.model!r}: use one of {', '.join(PRESETS)}")
        for name in ("steps", "save_every", "log_every", "grad_accum", "crop_frames"):
            if int(getattr(self, name)) < 1:
                raise SvcoverError(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(self, name)})")
        if self.batch_size != "auto" and int(self.batch_size) < 1:
            raise SvcoverError(f"--batch-size must be a positive integer or 'auto' (got {self.batch_size})")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise SvcoverError(f"--lr must be a positive number (got {self.lr})")
        if self.precision not in PRECISIONS:
            raise SvcoverError(
                f"--precision must be {', '.join(PRECISIONS[:-1])} or {PRECISIONS[-1]} (got {self.precision})"
            )
        return self


@dataclass
class TrainResult:
    step: int
    last_loss: float | None
    best_val_loss: float | None
    checkpoint: Path | None
    stopped_early: bool = False
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------
# Data: every chunk's features in RAM, random crops
# ------------------------------------------------------------------------------------------------


@dataclass
class Clip:
    name: str
    units: torch.Tensor  # [T, C] float16 (halves RAM; promoted to float32 per batch)
    f0: torch.Tensor  # [T] Hz, unvoiced frames interpolated (what upstream trains on)
    volume: torch.Tensor  # [T]
    mel: torch.Tensor  # [T, M] natural-log mel

    @property
    def frames(self) -> int:
        return int(self.mel.shape[0])


def load_clips(exp: Experiment, names: list[str], units_dim: int | None = None) -> list[Clip]:
    """Features of ``names`` as tensors, checked for shape agreement and finite values."""
    import torch

    clips = []
    for name in names:
        feats = load_features(exp, name)
        where = exp.features / name
        missing = [k for k in ("units", "f0_continuous", "volume", "mel") if k not in feats]
        if missing:
            raise SvcoverError(f"{where}: features lack {', '.join(missing)}", remedy=Remedy("extract", exp.name))
        units, mel = feats["units"], feats["mel"]
        if units.ndim != 2 or mel.ndim != 2:
            raise SvcoverError(f"{where}: units must be [T, C] and mel [M, T] (got {units.shape} and {mel.shape})")
        if units_dim is not None and units.shape[1] != units_dim:
            raise SvcoverError(
                f"{where}: content features are {units.shape[1]}-d but the model takes {units_dim}-d "
                "(extracted with another content encoder than the base model's); re-run extract with the matching --encoder"
            )
        units_dim = units.shape[1]
        for key in ("units", "f0_continuous", "volume", "mel"):
            if not np.isfinite(feats[key]).all():
                raise SvcoverError(f"{where}: {key} contains NaN/inf values; delete the folder and re-run extract")
        clips.append(
            Clip(
                name=name,
                units=torch.from_numpy(np.ascontiguousarray(units, dtype=np.float16)),
                f0=torch.from_numpy(np.ascontiguousarray(feats["f0_continuous"], dtype=np.float32)),
                volume=torch.from_numpy(np.ascontiguousarray(feats["volume"], dtype=np.float32)),
                mel=torch.from_numpy(np.ascontiguousarray(mel.T, dtype=np.float32)),
            )
        )
    return clips


def split_validation(names: list[str], n_val: int, seed: int) -> tuple[list[str], list[str]]:
    """(train, val) chunk names: a fixed pseudo-random pick of ``n_val``, at most a fifth of the chunks (>= 1).

    With a single chunk there is nothing to hold out: it is used for both (the log says so).
    """
    names = sorted(names)
    if len(names) < 2:
        return names, list(names)
    k = max(1, min(n_val, len(names) // 5))
    val = sorted(random.Random(seed).sample(names, k))
    return [n for n in names if n not in val], val


def sample_batch(clips: list[Clip], weights: torch.Tensor, batch: int, crop: int, gen: torch.Generator,
                 mel_floor: float) -> dict[str, torch.Tensor]:
    """``batch`` random crops of ``crop`` frames (chunks picked in proportion to their length).

    Shorter chunks are padded (mel with ``mel_floor``, i.e. silence) and masked out of the loss.
    """
    import torch

    idx = torch.multinomial(weights, batch, replacement=True, generator=gen).tolist()
    c = clips[0].units.shape[1]
    m = clips[0].mel.shape[1]
    units = torch.zeros(batch, crop, c)
    f0 = torch.zeros(batch, crop, 1)
    volume = torch.zeros(batch, crop, 1)
    mel = torch.full((batch, crop, m), float(mel_floor))
    mask = torch.zeros(batch, crop)
    for b, i in enumerate(idx):
        clip = clips[i]
        n = min(crop, clip.frames)
        start = int(torch.randint(0, clip.frames - n + 1, (1,), generator=gen))
        sl = slice(start, start + n)
        units[b, :n] = clip.units[sl].float()
        f0[b, :n, 0] = clip.f0[sl]
        volume[b, :n, 0] = clip.volume[sl]
        mel[b, :n] = clip.mel[sl]
        mask[b, :n] = 1.0
    return {"units": units, "f0": f0, "volume": volume, "mel": mel, "mask": mask}


# ------------------------------------------------------------------------------------------------
# Checkpoints
# ------------------------------------------------------------------------------------------------


def latest_valid_checkpoint(exp: Experiment) -> tuple[Path, dict] | None:
    """The newest step checkpoint that loads; corrupt ones are reported and skipped."""
    from core.model.decoder import CHECKPOINT_FORMAT

    for _, path in reversed(step_checkpoints(exp)):
        try:
            ckpt = safe_load(path)
        except CheckpointError as e:
            log.warning("skipping %s", e)
            continue
        if ckpt.get("format") != CHECKPOINT_FORMAT or "optimizer" not in ckpt:
            log.warning("skipping %s: not a training checkpoint of this program", path)
            continue
        return path, ckpt
    return None


def checkpoint_table(exp: Experiment) -> list[dict[str, Any]]:
    """Step checkpoints and best.pt with their validation loss (read from metrics.jsonl), newest first."""
    val_by_step = {r["step"]: r["val_loss"] for r in read_metrics(exp) if r.get("val_loss") is not None}
    rows = [
        {"file": p.name, "step": s, "val_loss": val_by_step.get(s), "mb": round(p.stat().st_size / 1e6, 1)}
        for s, p in reversed(step_checkpoints(exp))
    ]
    best = exp.checkpoints / "best.pt"
    meta = exp.checkpoints / "best.json"
    if best.is_file():
        info = _read_json(meta) or {}
        rows.insert(0, {"file": "best.pt", "step": info.get("step"), "val_loss": info.get("val_loss"),
                        "mb": round(best.stat().st_size / 1e6, 1)})  # fmt: skip
    return rows


def _record_config(exp: Experiment, cfg: TrainConfig) -> None:
    """This run's settings under ``"train"`` in ``config.json`` (its target: a later resume keeps it)."""
    data: dict[str, Any] = {}
    with contextlib.suppress(ValueError, OSError):
        loaded = load_json(exp.config) if exp.config.is_file() else {}
        data = loaded if isinstance(loaded, dict) else {}
    data["train"] = dataclasses.asdict(cfg)
    save_json(exp.config, data)


def recorded_target(exp: Experiment) -> tuple[int, int] | None:
    """(steps, save_every) of the experiment's latest run as recorded in ``config.json``."""
    train_cfg = (_read_json(exp.config) or {}).get("train") or {}
    try:
        return int(train_cfg["steps"]), int(train_cfg["save_every"])
    except (KeyError, TypeError, ValueError):
        return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _atomic_torch_save(path: Path, obj: dict) -> None:
    """core.checkpoints.save_checkpoint, plus the test hook that pauses before the rename."""
    pause = float(os.environ.get(PAUSE_IN_SAVE_ENV) or 0)
    if not pause:
        save_checkpoint(path, obj)
        return
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
        time.sleep(pause)


def _rotate(exp: Experiment, keep: int = KEEP_STEP_CHECKPOINTS) -> None:
    for _, path in step_checkpoints(exp)[:-keep]:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _remove_stale_temp_files(exp: Experiment) -> None:
    """Temp files left by a run killed in the middle of a save (never renamed, never loaded)."""
    for folder in (exp.checkpoints, exp.export):
        if folder.is_dir():
            for p in folder.glob(".tmp-*"):
                with contextlib.suppress(OSError):
                    p.unlink()


# ------------------------------------------------------------------------------------------------
# Metrics
# ------------------------------------------------------------------------------------------------


def read_metrics(exp: Experiment) -> list[dict[str, Any]]:
    """The rows of ``metrics.jsonl`` (a torn last line from a kill is ignored)."""
    rows = []
    try:
        text = exp.metrics.read_text(encoding="utf-8")
    except OSError:
        return rows
    for line in text.splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            row = json.loads(line)
            if isinstance(row, dict) and "step" in row:
                rows.append(row)
    return rows


def _truncate_metrics(exp: Experiment, step: int) -> None:
    """Drop rows logged after ``step`` (by a run killed before its next save), so a resume does not repeat steps."""
    if exp.metrics.is_file():
        rows = [r for r in read_metrics(exp) if int(r["step"]) <= step]
        atomic_write_text(exp.metrics, "".join(json.dumps(r) + "\n" for r in rows))


def _replace_last_metrics_row(exp: Experiment, row: dict[str, Any]) -> None:
    """Write ``row`` for its step, replacing a row already logged for that step (a stop right after a log)."""
    rows = [r for r in read_metrics(exp) if int(r["step"]) < row["step"]] + [row]
    atomic_write_text(exp.metrics, "".join(json.dumps(r) + "\n" for r in rows))


def _append_metrics(exp: Experiment, row: dict[str, Any]) -> None:
    with open(exp.metrics, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()


# ------------------------------------------------------------------------------------------------
# Precision, LR, memory
# ------------------------------------------------------------------------------------------------


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then halve every ``lr_half_life`` steps."""
    warm = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
    return cfg.lr * warm * 0.5 ** (step / max(1, cfg.lr_half_life))


def pick_precision(device: str, requested: str) -> tuple[Any, bool]:
    """(autocast dtype or None for fp32, use a loss scaler). bf16 where the GPU supports it, else fp16."""
    import torch

    if not device.startswith("cuda") or requested == "fp32":
        if requested in ("fp16", "bf16") and not device.startswith("cuda"):
            log.warning("--precision %s needs a CUDA GPU; training in fp32 on %s", requested, device)
        return None, False
    if requested == "bf16" or (requested == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16, False
    return torch.float16, True


def estimate_training_memory(model_cfg: Any, batch: int, crop: int, half: bool = True,
                             grad_checkpointing: bool = False) -> dict[str, float]:
    """Bytes of one training step: weights + grads + AdamW state + the activations kept for backward.

    Activations are measured, not guessed: one forward pass runs on the CPU while a saved-tensor hook
    adds up every tensor autograd keeps (halved for fp16/bf16 autocast, which stores most of them in
    16 bits; norm-free conv nets keep nothing in fp32 except the loss path). Weights/grads/Adam
    moments stay fp32 under autocast.
    """
    import torch

    from core.model.decoder import SvcDecoder

    model = SvcDecoder(model_cfg).train()
    model.set_gradient_checkpointing(grad_checkpointing)
    n_params = sum(p.numel() for p in model.parameters())
    saved = {"bytes": 0}
    seen: set[int] = set()

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = t.untyped_storage().data_ptr()
        if key not in seen and not isinstance(t, torch.nn.Parameter):
            seen.add(key)
            saved["bytes"] += t.untyped_storage().nbytes()
        return t

    c = model_cfg.units_dim
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(torch.randn(batch, crop, c), torch.rand(batch, crop, 1) * 500, torch.rand(batch, crop, 1),
                     torch.randn(batch, crop, model_cfg.n_mels) - 6)  # fmt: skip
    loss.backward()
    param_bytes = {k: 0 for k in ("weights", "grads", "adam")}
    for p in model.parameters():
        param_bytes["weights"] += p.numel() * 4
    param_bytes["grads"] = param_bytes["weights"]
    param_bytes["adam"] = 2 * param_bytes["weights"]
    weight_copies = param_bytes["weights"] / 2 if half else 0  # autocast's 16-bit copies of the weights
    act = saved["bytes"] / (2 if half else 1)
    total = sum(param_bytes.values()) + weight_copies + act
    return {"params": n_params, **{k: float(v) for k, v in param_bytes.items()}, "weight_copies": weight_copies,
            "activations": act, "total": total}  # fmt: skip


def auto_batch_size(model: SvcDecoder, device: str, crop: int, amp_dtype: Any, start: int = 64) -> int:
    """Largest batch (from ``start`` down) whose forward+backward fits on the GPU, with a margin.

    On CPU there is no fixed memory ceiling to probe: returns the default 16.
    """
    import torch

    if not device.startswith("cuda"):
        log.info("--batch-size auto: no GPU to probe on %s; using 16", device)
        return 16
    c = model.config.units_dim
    size = start
    while size >= 1:
        try:
            with torch.autocast("cuda", dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                loss = model(torch.randn(size, crop, c, device=device), torch.rand(size, crop, 1, device=device) * 500,
                             torch.rand(size, crop, 1, device=device), torch.randn(size, crop, model.config.n_mels, device=device) - 6)  # fmt: skip
            loss.backward()
            model.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            chosen = max(1, int(size * 0.75))  # headroom for fragmentation and validation
            log.info("--batch-size auto: %d fits on %s, using %d", size, device, chosen)
            return chosen
        except torch.OutOfMemoryError:
            model.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            size //= 2
    raise SvcoverError(f"--batch-size auto: not even one crop of {crop} frames fits on {device}; use --grad-checkpointing or a shorter --crop-frames")


# ------------------------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------------------------


def validation_loss(model: SvcDecoder, clips: list[Clip], device: str, max_frames: int, n_steps: int = 8,
                    seed: int = 0) -> float:
    """Mean noise-prediction loss on the held-out chunks at fixed steps with fixed noise (comparable across saves)."""
    import torch

    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    ts = torch.linspace(0, model.k_step_max - 1, n_steps).round().long().to(device)
    total = 0.0
    with torch.no_grad():
        for clip in clips:
            n = min(max_frames, clip.frames)
            units = clip.units[:n].float()[None].expand(n_steps, -1, -1).to(device)
            f0 = clip.f0[:n, None][None].expand(n_steps, -1, -1).to(device)
            vol = clip.volume[:n, None][None].expand(n_steps, -1, -1).to(device)
            mel = clip.mel[:n][None].expand(n_steps, -1, -1).to(device)
            noise = torch.randn(n_steps, 1, mel.shape[2], n, generator=gen).to(device)
            cond = model.condition(units, f0, vol)
            total += float(model.decoder.training_loss(mel, cond, t=ts, noise=noise))
    model.train(was_training)
    return total / max(1, len(clips))


def _mel_image(model: SvcDecoder, clip: Clip, device: str, max_frames: int, step_t: int = 300) -> Any:
    """[1, 2M, T] image: ground-truth mel above the model's one-shot clean-mel estimate at step ``step_t``."""
    import torch

    n = min(max_frames, clip.frames)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        cond = model.condition(clip.units[:n].float()[None].to(device), clip.f0[:n, None][None].to(device),
                               clip.volume[:n, None][None].to(device))  # fmt: skip
        x0 = model.norm_spec(clip.mel[:n][None].to(device)).transpose(1, 2)[:, None]  # [1,1,M,T]
        t = torch.tensor([min(step_t, model.k_step_max - 1)], device=device)
        x_t = model.decoder.q_sample(x0, t, torch.randn(x0.shape, generator=gen).to(device))
        x0_hat = model.decoder.predict_x0(x_t, t, model.denoise(x_t, t, cond)).clamp(-1, 1)
    img = torch.cat([x0[0, 0], x0_hat[0, 0]], dim=0).flip(0)  # low bins at the bottom
    return ((img + 1) / 2).clamp(0, 1)[None].cpu()


class _AudioLogger:
    """At each save, a validation chunk sampled by the model (20 steps) and its ground truth, through NSF-HiFiGAN.

    Only when the vocoder is in pretrained/; otherwise TensorBoard gets the mel images only (said once).
    """

    def __init__(self, device: str) -> None:
        self.device = device
        self.vocoder: Any = None
        self.enabled = True
        self.logged_truth = False

    def __call__(self, writer: Any, model: SvcDecoder, clip: Clip, step: int, max_frames: int) -> None:
        if not self.enabled or writer is None:
            return
        try:
            import torch

            from core.vocoder import NsfHifiGan  # the networks (torch)

            if self.vocoder is None:
                self.vocoder = NsfHifiGan.from_pretrained(self.device)
            n = min(max_frames, clip.frames)
            f0 = clip.f0[:n]
            if not self.logged_truth:
                wav = self.vocoder.vocode(clip.mel[:n].T.numpy(), f0.numpy(), deterministic=True)
                writer.add_audio("val/audio_ground_truth", torch.from_numpy(wav)[None], step, sample_rate=self.vocoder.sample_rate)
                self.logged_truth = True
            was_training = model.training
            model.eval()
            with torch.no_grad():
                cond = model.condition(clip.units[:n].float()[None].to(self.device), f0[None, :, None].to(self.device),
                                       clip.volume[:n, None][None].to(self.device))  # fmt: skip
                x0 = sample(model.denoise, cond, (1, 1, model.config.n_mels, n), steps=20, seed=0,
                            betas=model.betas.detach().cpu().numpy(), device=self.device)  # fmt: skip
                mel = model.denorm_spec(x0)[0, 0].float().cpu().numpy()
            model.train(was_training)
            wav = self.vocoder.vocode(mel, f0.numpy(), deterministic=True)
            writer.add_audio("val/audio_sampled", torch.from_numpy(wav)[None], step, sample_rate=self.vocoder.sample_rate)
        except (ImportError, SvcoverError) as e:
            log.info("no validation audio in TensorBoard (%s)", str(e).splitlines()[0] if str(e) else type(e).__name__)
            self.enabled = False


# ------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------


class _StopRequest:
    """Set by SIGTERM/SIGINT or by the stop file; the loop saves and exits at the next step."""

    def __init__(self, stop_file: Path) -> None:
        self.stop_file = stop_file
        self.signalled = False
        self.previous: dict[int, Any] = {}

    def install(self) -> None:
        def handler(signum: int, frame: Any) -> None:
            if self.signalled:  # second Ctrl+C: the user does not want to wait for the save
                raise KeyboardInterrupt
            self.signalled = True
            log.info("signal %d: saving and stopping after this step (again to quit at once)", signum)

        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError):  # not the main thread (tests calling train in a thread)
                self.previous[sig] = signal.signal(sig, handler)

    def restore(self) -> None:
        for sig, old in self.previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, old)
        self.previous.clear()

    def requested(self) -> bool:
        return self.signalled or self.stop_file.exists()


def request_stop(exp: Experiment) -> Path:
    """Ask a running training of ``exp`` to save and exit (what the UI's Stop button does)."""
    path = exp.root / STOP_FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("stop\n", encoding="utf-8")
    return path


def distributed_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


@dataclass
class _Run:
    """The state of one training run: built by :func:`_set_up`, advanced by :func:`_train_step`, written by :func:`_save`."""

    exp: Experiment
    cfg: TrainConfig
    rank: int
    world: int  # processes (torchrun); 1 without DDP
    local_rank: int
    device: str
    amp_dtype: Any  # autocast dtype, None for fp32
    model: SvcDecoder
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    data_gen: torch.Generator  # draws the crops; saved, so a resume continues the same sequence
    stats: dict[str, Any]  # the dataset's stats.json, stored in every checkpoint
    base_name: str | None  # the base model fine-tuned from (None: from scratch)
    train_clips: list[Clip]
    val_clips: list[Clip]
    val_names: list[str]
    crop_weights: torch.Tensor  # chunks are picked in proportion to their length
    crop: int  # frames per crop
    batch_size: int
    step: int = 0
    seconds_before: float = 0.0  # training time of the runs this one resumes
    best_val: float | None = None
    last_saved: Path | None = None
    # set by _start, right before the loop
    net: torch.nn.Module | None = None  # the model, wrapped in DistributedDataParallel under torchrun
    autocast: Any = None
    writer: Any = None  # TensorBoard (rank 0, when installed)
    audio_logger: _AudioLogger | None = None
    stop: _StopRequest | None = None
    start_step: int = 0
    t_start: float = 0.0
    # updated by the loop
    last_loss: float | None = None
    bad_steps: int = 0  # non-finite losses in a row
    t_window: float = 0.0  # start of the current steps/s window
    steps_window: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def train(exp: str | Experiment, cfg: TrainConfig, progress: ProgressFn | None = None) -> TrainResult:
    """Train (or resume training) the decoder of ``exp`` until ``cfg.steps``.

    Raises :class:`SvcoverError` for a missing experiment/features, mismatched feature dims, an
    unloadable base, or a diverged run (:class:`TrainingDivergedError`, after the last good checkpoint).
    """
    cfg.validate()
    exp = exp if isinstance(exp, Experiment) else Experiment.open(exp)
    if not exp.exists():
        raise SvcoverError(f"{exp.root}: experiment not found", remedy=Remedy("dataset", exp.name))
    rank, world, local_rank = distributed_env()
    device = _init_processes(cfg, world, local_rank)
    run: _Run | None = None
    completed = False
    try:  # one teardown (signal handlers, TensorBoard, the process group) however the run ends
        run = _set_up(exp, cfg, device, rank, world, local_rank)
        if run.step >= cfg.steps:
            log.info("%s is already at step %d (>= --steps %d): nothing to train", exp.name, run.step, cfg.steps)
            return TrainResult(step=run.step, last_loss=None, best_val_loss=run.best_val, checkpoint=run.last_saved)
        _start(run)
        stopped_early = _loop(run, progress)
        if stopped_early:
            _finish_stopped(run)
        completed = True
    finally:
        _tear_down(run, world, completed)
    return TrainResult(step=run.step, last_loss=run.last_loss, best_val_loss=run.best_val, checkpoint=run.last_saved,
                       stopped_early=stopped_early, seconds=time.perf_counter() - run.t_start, history=run.history)  # fmt: skip


def _loop(run: _Run, progress: ProgressFn | None) -> bool:
    """Optimizer steps until ``cfg.steps``, validating and saving every ``save_every``. True if asked to stop."""
    cfg = run.cfg
    while run.step < cfg.steps:
        if _any_rank(run.stop.requested(), run.world):
            return True
        loss = _train_step(run)
        if not math.isfinite(loss):
            _skip_bad_step(run, loss)  # raises TrainingDivergedError when the run cannot recover
            continue
        run.bad_steps = 0
        run.steps_window += 1
        run.last_loss = loss

        do_save = run.step % cfg.save_every == 0 or run.step == cfg.steps
        val_loss = None
        if do_save and run.is_main:
            val_loss = validation_loss(run.model, run.val_clips, run.device, cfg.val_max_frames)
        if run.is_main and (run.step % cfg.log_every == 0 or do_save or run.step == run.start_step + 1):
            _log_step(run, loss, val_loss)
        report(progress, (run.step - run.start_step) / max(1, cfg.steps - run.start_step),
               f"step {run.step}/{cfg.steps} loss {loss:.4f}")  # fmt: skip
        if do_save:
            if not _params_finite(run.model):  # checked on every rank (the weights are the same), so all stop together
                raise TrainingDivergedError(f"{run.exp.root}: weights became NaN/inf at step {run.step}; not saved; "
                                            f"the last good checkpoint is {run.last_saved}")  # fmt: skip
            if run.is_main:
                _save(run, val_loss)
                log.info("step %d: loss %.4f, val %.4f, saved %s", run.step, loss, val_loss, run.last_saved.name)
            _barrier(run.world)
    return False


# ---- set-up ----------------------------------------------------------------------------------------


def _init_processes(cfg: TrainConfig, world: int, local_rank: int) -> str:
    """The device of this process; under torchrun also joins the process group (one GPU per process)."""
    import torch

    device = pick_device(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if world > 1:
        import torch.distributed as dist

        if device.startswith("cuda"):
            device = f"cuda:{local_rank}"
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return device


def _set_up(exp: Experiment, cfg: TrainConfig, device: str, rank: int, world: int, local_rank: int) -> _Run:
    """Data, model (resume > base > scratch), optimizer and RNG states, ready for the step the run is at."""
    import torch

    amp_dtype, use_scaler = pick_precision(device, cfg.precision)
    names = list_feature_chunks(exp)
    if not names:
        raise NothingToDoError(f"{exp.features}: no extracted features", remedy=Remedy("extract", exp.name))
    stats = load_stats(exp)
    if rank == 0:
        _prepare_folder(exp, cfg)
    _barrier(world)
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
    model, resumed, base_name = _build_model(exp, cfg, stats)
    ckpt = resumed[1] if resumed else None

    val_names = (ckpt or {}).get("val_chunks")
    if val_names and all(n in names for n in val_names):
        train_names = [n for n in names if n not in val_names] or list(names)
    else:
        train_names, val_names = split_validation(names, cfg.val_chunks, cfg.seed)
    train_clips = load_clips(exp, train_names, model.config.units_dim)
    val_clips = load_clips(exp, val_names, model.config.units_dim)
    if val_names == train_names:
        log.warning("only one chunk: validating on the training chunk (add more audio for a real validation loss)")
    crop = min(cfg.crop_frames, max(c.frames for c in train_clips))

    model.to(device).train()
    model.set_gradient_checkpointing(cfg.grad_checkpointing)
    batch_size = auto_batch_size(model, device, crop, amp_dtype) if cfg.batch_size == "auto" else int(cfg.batch_size)
    run = _Run(
        exp=exp, cfg=cfg, rank=rank, world=world, local_rank=local_rank, device=device, amp_dtype=amp_dtype, model=model,
        optimizer=torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay),  # as upstream
        scaler=torch.amp.GradScaler(device.split(":")[0], enabled=use_scaler), data_gen=torch.Generator(),
        stats=stats, base_name=base_name, train_clips=train_clips, val_clips=val_clips, val_names=val_names,
        crop_weights=torch.tensor([float(c.frames) for c in train_clips]), crop=crop, batch_size=batch_size,
        last_saved=resumed[0] if resumed else None,
    )  # fmt: skip
    _restore_state(run, ckpt)
    if rank == 0:  # rows a killed run logged after its last save (or before its first) would repeat steps
        _truncate_metrics(exp, run.step)
    return run


def _prepare_folder(exp: Experiment, cfg: TrainConfig) -> None:
    """Rank 0, before the model is built: log file, recorded config, no leftovers of a killed run or stale stop."""
    _log_to_file(exp)
    _record_config(exp, cfg)
    exp.checkpoints.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_files(exp)
    with contextlib.suppress(FileNotFoundError):
        (exp.root / STOP_FILE_NAME).unlink()  # a stale request from an earlier run


def _build_model(exp: Experiment, cfg: TrainConfig,
                 stats: dict[str, Any]) -> tuple[SvcDecoder, tuple[Path, dict] | None, str | None]:  # fmt: skip
    """(model, the checkpoint resumed from or None, base name): resume > fine-tune from ``cfg.base`` > scratch."""
    from core.model.decoder import SvcDecoder, config_from_dict

    resumed = latest_valid_checkpoint(exp)
    if resumed is not None:
        ckpt_path, ckpt = resumed
        model = SvcDecoder(config_from_dict(ckpt["config"], source=str(ckpt_path)), stats=ckpt.get("stats"))
        model.load_state_dict(ckpt["model"])
        base_name = (ckpt.get("train_config") or {}).get("base")
        log.info("resuming from %s (step %d)", ckpt_path, ckpt["step"])
    elif cfg.base:
        base_path = _resolve_base(cfg.base)
        model = SvcDecoder.from_checkpoint(base_path)
        base_name = portable_label(base_path, pretrained.pretrained_root())  # recorded in files the web UI serves
        log.info("fine-tuning from %s (%d x %d)", base_path, model.config.n_chans, model.config.n_layers)
    else:
        model = SvcDecoder(preset(cfg.model, units_dim=int(stats.get("units_dim") or 768)))
        base_name = None
        log.info("training from scratch: %s config (%d x %d)", cfg.model, model.config.n_chans, model.config.n_layers)
    model.stats = dict(stats)
    return model, resumed, base_name


def _restore_state(run: _Run, ckpt: dict[str, Any] | None) -> None:
    """Optimizer, loss scaler, step and RNG states from the resumed checkpoint; fresh seeds per rank otherwise."""
    import torch

    seed, rank = run.cfg.seed, run.rank
    if ckpt is None:
        torch.manual_seed(seed + 7919 * rank)
        run.data_gen.manual_seed(seed + 104729 * rank)
        np.random.seed(seed + rank)
        return
    run.optimizer.load_state_dict(ckpt["optimizer"])
    if ckpt.get("scaler"):
        run.scaler.load_state_dict(ckpt["scaler"])
    run.step = int(ckpt["step"])
    run.seconds_before = float(ckpt.get("seconds", 0.0))
    run.best_val = ckpt.get("best_val_loss")
    rng = ckpt.get("rng") or {}
    if run.world == 1 and "torch" in rng:  # exact continuation of the single-process run
        torch.set_rng_state(rng["torch"])
        run.data_gen.set_state(rng["data"])
        if run.device.startswith("cuda") and "cuda" in rng:
            torch.cuda.set_rng_state(rng["cuda"])
    else:
        torch.manual_seed(seed + 7919 * rank + run.step)
        run.data_gen.manual_seed(seed + 104729 * rank + run.step)


def _start(run: _Run) -> None:
    """Right before the first step: DDP wrapper, TensorBoard, stop handling, clocks."""
    import torch

    run.net = run.model
    if run.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        run.net = DistributedDataParallel(run.model, device_ids=[run.local_rank] if run.device.startswith("cuda") else None)
    if run.is_main:
        run.writer = _tensorboard(run.exp)
        log.info("%s: %d train / %d val chunks, batch %d x %d frames (x%d accum, %d process(es)), %s, %s",
                 run.exp.name, len(run.train_clips), len(run.val_clips), run.batch_size, run.crop, run.cfg.grad_accum,
                 run.world, run.device, {None: "fp32"}.get(run.amp_dtype, str(run.amp_dtype).replace("torch.", "")))  # fmt: skip
    run.audio_logger = _AudioLogger(run.device)
    run.stop = _StopRequest(run.exp.root / STOP_FILE_NAME)
    run.stop.install()
    run.autocast = torch.autocast(run.device.split(":")[0], dtype=run.amp_dtype or torch.float32,
                                  enabled=run.amp_dtype is not None)  # fmt: skip
    run.start_step = run.step
    run.t_start = run.t_window = time.perf_counter()


# ---- the step --------------------------------------------------------------------------------------


def _train_step(run: _Run) -> float:
    """One optimizer step from ``grad_accum`` micro-batches; the loss averaged over the processes.

    A non-finite loss leaves the weights and the step count as they were (the caller handles it).
    """
    import torch

    cfg = run.cfg
    run.optimizer.zero_grad(set_to_none=True)
    mel_floor = float(run.model.config.spec_min)
    loss_sum = 0.0
    for micro in range(cfg.grad_accum):
        batch = {k: v.to(run.device, non_blocking=True) for k, v in
                 sample_batch(run.train_clips, run.crop_weights, run.batch_size, run.crop, run.data_gen, mel_floor).items()}  # fmt: skip
        sync = contextlib.nullcontext()
        if run.world > 1 and micro < cfg.grad_accum - 1:
            sync = run.net.no_sync()  # type: ignore[operator]
        with sync:
            with run.autocast:
                loss = run.net(batch["units"], batch["f0"], batch["volume"], batch["mel"], batch["mask"])
            run.scaler.scale(loss / cfg.grad_accum).backward()
        loss_sum += float(loss.detach()) / cfg.grad_accum
    loss_value = _mean_over_ranks(loss_sum, run.world, run.device)
    if not math.isfinite(loss_value):
        return loss_value
    lr = lr_at(run.step, cfg)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    run.scaler.unscale_(run.optimizer)
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
    run.scaler.step(run.optimizer)  # skipped by the scaler if fp16 gradients overflowed
    run.scaler.update()
    run.step += 1
    return loss_value


def _skip_bad_step(run: _Run, loss_value: float) -> None:
    """Drop the gradients of a NaN/inf loss; raise once the weights are broken or ``max_bad_steps`` in a row."""
    run.bad_steps += 1
    run.optimizer.zero_grad(set_to_none=True)
    diverged = not _params_finite(run.model)
    log.warning("step %d: loss is %s; step skipped (%d in a row)", run.step + 1, loss_value, run.bad_steps)
    if diverged or run.bad_steps >= run.cfg.max_bad_steps:
        where = f"the last good checkpoint is {run.last_saved}" if run.last_saved else "no checkpoint was saved"
        raise TrainingDivergedError(
            f"{run.exp.root}: training diverged at step {run.step + 1} (loss {loss_value}"
            f"{', weights are NaN/inf' if diverged else f' for {run.bad_steps} steps in a row'}); "
            f"{where}; try a lower --lr or --precision fp32"
        )


def _params_finite(model: SvcDecoder) -> bool:
    import torch

    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _log_step(run: _Run, loss: float, val_loss: float | None) -> None:
    """Rank 0: a metrics.jsonl row, and TensorBoard scalars (at a save also the mel image and audio)."""
    now = time.perf_counter()
    lr = lr_at(run.step - 1, run.cfg)  # the rate the step just taken used
    row = {"step": run.step, "loss": round(loss, 6), "lr": lr,
           "seconds": round(run.seconds_before + now - run.t_start, 3),
           "steps_per_s": round(run.steps_window / max(now - run.t_window, 1e-9), 3)}  # fmt: skip
    if val_loss is not None:
        row["val_loss"] = round(val_loss, 6)
    _append_metrics(run.exp, row)
    run.history.append(row)
    run.t_window, run.steps_window = now, 0
    writer = run.writer
    if writer is not None:
        writer.add_scalar("train/loss", loss, run.step)
        writer.add_scalar("train/lr", lr, run.step)
        if val_loss is not None:
            max_frames = run.cfg.val_max_frames
            writer.add_scalar("val/loss", val_loss, run.step)
            writer.add_image("val/mel_gt_vs_estimate", _mel_image(run.model, run.val_clips[0], run.device, max_frames), run.step)
            run.audio_logger(writer, run.model, run.val_clips[0], run.step, max_frames)
        writer.flush()


# ---- saving and the end ----------------------------------------------------------------------------


def _save(run: _Run, val_loss: float | None) -> Path:
    """Checkpoint (rank 0 only): step file, rotation, best.pt, export. Called with finite weights only."""
    import torch

    from core.model.decoder import CHECKPOINT_FORMAT

    exp, step = run.exp, run.step
    cfg_dict = dataclasses.asdict(run.model.config)
    train_dict = {**dataclasses.asdict(run.cfg), "batch_size": run.batch_size, "base": run.base_name}
    is_best = val_loss is not None and (run.best_val is None or val_loss < run.best_val)
    if is_best:
        run.best_val = val_loss
    rng_state = {"torch": torch.get_rng_state(), "data": run.data_gen.get_state()}
    if run.device.startswith("cuda"):
        rng_state["cuda"] = torch.cuda.get_rng_state()
    state = {k: v.detach().cpu() for k, v in run.model.state_dict().items()}
    path = exp.checkpoints / f"step_{step}.pt"
    _atomic_torch_save(path, {
        "format": CHECKPOINT_FORMAT, "version": 1, "step": step, "model": state, "config": cfg_dict,
        "train_config": train_dict, "stats": run.stats, "optimizer": run.optimizer.state_dict(),
        "scaler": run.scaler.state_dict(), "rng": rng_state, "val_loss": val_loss, "best_val_loss": run.best_val,
        "val_chunks": list(run.val_names), "seconds": run.seconds_before + (time.perf_counter() - run.t_start),
    })  # fmt: skip
    _rotate(exp)
    if is_best:
        _atomic_torch_save(exp.checkpoints / "best.pt", {
            "format": CHECKPOINT_FORMAT, "version": 1, "step": step, "model": state, "config": cfg_dict,
            "stats": run.stats, "val_loss": val_loss,
        })  # fmt: skip
        save_json(exp.checkpoints / "best.json", {"step": step, "val_loss": val_loss})
    export_decoder(exp, run.model, decoder_format=CHECKPOINT_FORMAT, steps=step, val_loss=val_loss,
                   best_val_loss=run.best_val, base=run.base_name, checkpoint=path.name)  # fmt: skip
    run.last_saved = path
    return path


def _finish_stopped(run: _Run) -> None:
    """After a stop request: save the step reached (unless just saved) and clear the stop file."""
    if run.is_main and run.step > run.start_step and (
        run.last_saved is None or step_checkpoints(run.exp)[-1][0] != run.step
    ):
        val_loss = validation_loss(run.model, run.val_clips, run.device, run.cfg.val_max_frames)
        row = {"step": run.step, "loss": round(run.last_loss or 0.0, 6), "lr": lr_at(run.step - 1, run.cfg),
               "seconds": round(run.seconds_before + time.perf_counter() - run.t_start, 3),
               "val_loss": round(val_loss, 6)}  # fmt: skip
        _replace_last_metrics_row(run.exp, row)
        _save(run, val_loss)
    log.info("stopped at step %d; saved %s", run.step, run.last_saved)
    if run.is_main:
        with contextlib.suppress(FileNotFoundError):
            (run.exp.root / STOP_FILE_NAME).unlink()


def _tear_down(run: _Run | None, world: int, completed: bool) -> None:
    """The one exit path: signal handlers back, TensorBoard closed, the process group left.

    The barrier only after a completed run: after an error the other processes may never reach it.
    """
    if run is not None:
        if run.stop is not None:
            run.stop.restore()
        if run.writer is not None:
            run.writer.close()
    if world > 1:
        import torch.distributed as dist

        if completed:
            dist.barrier()
        dist.destroy_process_group()


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def _resolve_base(base: str) -> Path:
    if base in ("pretrained", "base", "diffusion_svc"):
        return pretrained.require(pretrained.DIFFUSION_SVC_BASE)
    path = Path(base).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{path}: --base model file not found")
    return path


def _any_rank(flag: bool, world: int) -> bool:
    """True on every rank if it is true on any (so all processes stop at the same step)."""
    if world == 1:
        return flag
    import torch
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t)
    return bool(t.item() > 0)


def _mean_over_ranks(value: float, world: int, device: str) -> float:
    if world == 1:
        return value
    import torch
    import torch.distributed as dist

    t = torch.tensor([value], device=device if device.startswith("cuda") else "cpu")
    dist.all_reduce(t)
    return float(t.item()) / world


def _tensorboard(exp: Experiment) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard not installed: metrics.jsonl still has everything
        log.warning("tensorboard is not installed; logging to metrics.jsonl only")
        return None
    return SummaryWriter(log_dir=str(exp.tensorboard))


def _log_to_file(exp: Experiment) -> None:
    path = exp.root / "train.log"
    root = logging.getLogger()
    if any(isinstance(h, logging.FileHandler) and Path(h.baseFilename) == path for h in root.handlers):
        return
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.setLevel(logging.INFO)
    log.addHandler(handler)
    log.setLevel(logging.INFO)


# ------------------------------------------------------------------------------------------------
# Preparation (the UI's one-click Train, --prepare on the command line)
# ------------------------------------------------------------------------------------------------


def prepare(exp: Experiment, sources: list[str] | None = None, f0_method: str = ExtractConfig.f0_method,
            encoder: str = ExtractConfig.encoder, device: str = ExtractConfig.device,
            progress: ProgressFn | None = None) -> None:  # fmt: skip
    """Run whatever is missing before training: the dataset (from ``sources``) and the feature extraction.

    Both stages are cached, so this only does the missing work (the UI's one-click Train).
    """
    if not visible_files(exp.gt_wavs, "*.wav"):
        if not sources:
            raise NothingToDoError(
                f"{exp.gt_wavs}: the experiment has no dataset yet: build it in the Dataset tab, or give recordings "
                "('Recordings for the dataset' in the Train tab, --source on the command line)"
            )
        log.info("building the dataset of %s from %s", exp.name, ", ".join(sources))
        build_dataset(exp.name, [Path(s) for s in sources], progress=scaled(progress, 0.0, 0.2))
    if len(list_feature_chunks(exp)) < len(visible_files(exp.gt_wavs, "*.wav")):
        log.info("extracting features of %s (%s, %s)", exp.name, encoder, f0_method)
        run_extract(exp, ExtractConfig(f0_method=f0_method, encoder=encoder, device=device), scaled(progress, 0.2, 1.0))
