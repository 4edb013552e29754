"""``python -m core train``: parses the flags into a :class:`~core.train.TrainConfig` and calls ``train()``.

    python -m core train --exp NAME [--steps N] [--save-every K] [--batch-size B|auto] [--base PATH|pretrained]
    torchrun --nproc_per_node 2 -m core train --exp NAME ...        # DDP, one process per GPU (gloo on CPU)

Defaults come from ``TrainConfig()`` (``ExtractConfig()`` for ``--prepare``) and the choice lists from their homes (network presets in
:mod:`core.model.config`, precisions in :mod:`core.train`, devices in :mod:`core.device`). core.train imports
torch only inside its functions, so ``--help`` stays light.
"""

from __future__ import annotations

import argparse

from core.device import DEVICE_CHOICES
from core.errors import SvcoverError
from core.experiment import Experiment
from core.features.extract import ExtractConfig
from core.model.config import PRESETS
from core.progress import tqdm_progress
from core.train import PRECISIONS, TrainConfig, distributed_env, prepare, train


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d, e = TrainConfig(), ExtractConfig()
    parser.add_argument("--exp", required=True, help="experiment name (logs/<exp>/ with extracted features)")
    parser.add_argument("--steps", type=int, default=d.steps, help=f"train until this step (default {d.steps}); re-running resumes")
    parser.add_argument("--save-every", type=int, default=d.save_every, help=f"validate and checkpoint every K steps (default {d.save_every})")
    parser.add_argument("--batch-size", default=str(d.batch_size),
                        help=f"crops per step per process, or 'auto' to probe the GPU (default {d.batch_size})")
    parser.add_argument("--base", default=d.base,
                        help="fine-tune from this Diffusion-SVC model_*.pt (config.yaml beside it optional) or svcover checkpoint; "
                        "'pretrained' = pretrained/diffusion_svc/model_0.pt (default: train from scratch)")  # fmt: skip
    parser.add_argument("--config", choices=tuple(PRESETS), default=d.model,
                        help="network when training from scratch: default = 512 ch x 20 layers (the public base), tiny = 64 x 4")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default=d.device, help=f"compute device (default {d.device})")
    parser.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate (default {d.lr})")
    parser.add_argument("--grad-accum", type=int, default=d.grad_accum, help=f"micro-batches per optimizer step (default {d.grad_accum})")
    parser.add_argument("--crop-frames", type=int, default=d.crop_frames, help=f"frames per training crop (default {d.crop_frames} = 2 s)")
    parser.add_argument("--precision", choices=PRECISIONS, default=d.precision,
                        help="auto = bf16 (or fp16 with loss scaling) on CUDA, fp32 on CPU")
    parser.add_argument("--grad-checkpointing", action="store_true", default=d.grad_checkpointing,
                        help="recompute activations in backward (less GPU memory)")
    parser.add_argument("--log-every", type=int, default=d.log_every, help=f"metrics line every N steps (default {d.log_every})")
    parser.add_argument("--val-chunks", type=int, default=d.val_chunks, help=f"held-out chunks for validation (default {d.val_chunks})")
    parser.add_argument("--seed", type=int, default=d.seed, help="random seed")
    parser.add_argument("--prepare", action="store_true",
                        help="first run what is missing: the dataset (from --source) and feature extraction")
    parser.add_argument("--source", action="append", default=None,
                        help="with --prepare: audio file/folder/zip for the dataset when it is not built yet (repeatable)")
    parser.add_argument("--f0", default=e.f0_method, help=f"with --prepare: F0 method for extraction (default {e.f0_method})")
    parser.add_argument("--encoder", default=e.encoder, help=f"with --prepare: content encoder (default {e.encoder})")
    parser.add_argument("--threads", type=int, default=d.threads, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--warmup-steps", type=int, default=d.warmup_steps,
                        help=f"steps of linear learning-rate warm-up (default {d.warmup_steps})")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    batch: int | str = "auto" if str(args.batch_size).lower() == "auto" else _int(args.batch_size, "--batch-size")
    return TrainConfig(model=args.config, base=args.base, steps=args.steps, save_every=args.save_every, batch_size=batch,
                       device=args.device, lr=args.lr, grad_accum=args.grad_accum, crop_frames=args.crop_frames,
                       precision=args.precision, grad_checkpointing=args.grad_checkpointing, log_every=args.log_every,
                       val_chunks=args.val_chunks, seed=args.seed, threads=args.threads,
                       warmup_steps=args.warmup_steps)  # fmt: skip


def _int(text: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise SvcoverError(f"{flag} must be an integer or 'auto' (got {text!r})") from None


def run_cli(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    exp = Experiment.open(args.exp)
    rank, world, _ = distributed_env()
    if args.prepare and world == 1:  # under torchrun, prepare once beforehand instead
        with tqdm_progress(f"prepare {exp.name}", unit="%") as progress:
            prepare(exp, args.source, args.f0, args.encoder, args.device, progress)
    if rank == 0:
        with tqdm_progress(f"train {exp.name}", unit="%") as progress:
            result = train(exp, cfg, progress)
    else:
        result = train(exp, cfg)
    if rank == 0:
        state = "stopped" if result.stopped_early else "done"
        best = f", best val loss {result.best_val_loss:.4f}" if result.best_val_loss is not None else ""
        print(f"{state}: {exp.name} at step {result.step}{best}; checkpoint {result.checkpoint}")
    return 0
