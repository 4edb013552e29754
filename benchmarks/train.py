"""Train-stage benchmark: steps/s on this CPU, the 6 GB GPU memory estimate, time-to-loss on LJSpeech.

    .venv/bin/python benchmarks/train.py [--threads 1] [--default-steps 2] [--out benchmarks/results_train.md]

* steps/s: forward + backward + AdamW step on random inputs of the stated batch x crop (tiny and default
  configs), after one warm-up step.
* memory: core.train.estimate_training_memory (weights, grads, AdamW moments, autocast weight copies,
  and the activations autograd keeps, measured on CPU with a saved-tensor hook), for the default
  training setting, for upstream's batch 48, and with gradient checkpointing.
* time-to-loss: the tiny config trained by core.train.train on 12 LJSpeech clips with stand-in features
  (tests/standin_features.py), validation every 20 steps; reports when the validation loss first goes
  below 0.85 (an untrained model scores ~1.0).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import print_report  # noqa: E402  (importable once the repository root is on sys.path)

GIB = 2**30


def steps_per_second(cfg, batch: int, crop: int, steps: int) -> float:
    import torch

    from core.model.decoder import SvcDecoder

    model = SvcDecoder(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    inputs = (torch.randn(batch, crop, cfg.units_dim), torch.rand(batch, crop, 1) * 400 + 80,
              torch.rand(batch, crop, 1) * 0.1, torch.randn(batch, crop, cfg.n_mels) - 6)  # fmt: skip

    def one() -> None:
        opt.zero_grad(set_to_none=True)
        model(*inputs).backward()
        opt.step()

    one()
    start = time.perf_counter()
    for _ in range(steps):
        one()
    return steps / (time.perf_counter() - start)


def time_to_loss(target: float, max_steps: int, threads: int) -> tuple[int | None, float | None, list[dict]]:
    import os

    from core.experiment import Experiment
    from core.train import TrainConfig, read_metrics, train
    from tests.standin_features import build_standin_experiment

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SVCOVER_LOGS"] = tmp
        exp = build_standin_experiment(Experiment.open("bench"), n_files=12, max_seconds=5.0)
        cfg = TrainConfig(model="tiny", device="cpu", steps=max_steps, save_every=20, log_every=20, batch_size=8,
                          crop_frames=64, lr=5e-3, warmup_steps=5, threads=threads)  # fmt: skip
        train(exp, cfg)
        rows = [r for r in read_metrics(exp) if "val_loss" in r]
    for r in rows:
        if r["val_loss"] < target:
            return r["step"], r["seconds"], rows
    return None, None, rows


def rss_crosscheck(cfg, batch: int, crop: int) -> tuple[float, float]:
    """(hook-measured fp32 activations, growth of the process RSS while one forward graph is alive), in MiB.

    An independent check of the saved-tensor measurement through the CPU allocator (run with
    MALLOC_MMAP_THRESHOLD_=65536 so freed blocks go back to the OS and do not hide the growth).
    """
    import gc

    import psutil
    import torch

    from core.model.decoder import SvcDecoder
    from core.train import estimate_training_memory

    hook = estimate_training_memory(cfg, batch, crop, half=False)["activations"] / 2**20
    model = SvcDecoder(cfg).train()
    x = (torch.randn(batch, crop, cfg.units_dim), torch.rand(batch, crop, 1) * 500, torch.rand(batch, crop, 1),
         torch.randn(batch, crop, cfg.n_mels) - 6)  # fmt: skip
    loss = model(*x)  # warm-up: the allocator's own first-use growth is not activations
    del loss
    gc.collect()
    proc = psutil.Process()
    before = proc.memory_info().rss
    loss = model(*x)
    grown = (proc.memory_info().rss - before) / 2**20
    del loss
    return hook, grown


def budget(step_bytes: float) -> float:
    """GiB on the card: the step's tensors plus 20 % caching-allocator slack plus ~1 GiB of CUDA context/cuDNN workspace."""
    return 1.2 * step_bytes / GIB + 1.0


def main() -> int:
    import torch

    from core.model.config import DEFAULT, TINY
    from core.train import TrainConfig, estimate_training_memory

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--default-steps", type=int, default=2, help="timed steps of the 512x20 config (slow on CPU)")
    p.add_argument("--skip-time-to-loss", action="store_true")
    p.add_argument("--out", type=Path, default=None, help="also write the markdown table here")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    d = TrainConfig()
    lines = [f"# Train benchmark ({time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
             f"{a.threads} torch thread(s), torch {torch.__version__})", ""]  # fmt: skip

    lines += ["## Steps/s on this CPU (fp32, random inputs, forward + backward + AdamW)", "",
              "| config | params | batch x crop frames | steps/s |", "| --- | --- | --- | --- |"]  # fmt: skip
    for name, cfg, batch, crop, n in [("tiny (64 x 4)", TINY, 8, 64, 20), ("tiny (64 x 4)", TINY, d.batch_size, d.crop_frames, 5),
                                      ("default (512 x 20)", DEFAULT, 4, d.crop_frames, a.default_steps)]:  # fmt: skip
        from core.model.decoder import SvcDecoder

        params = sum(p.numel() for p in SvcDecoder(cfg).parameters())
        sps = steps_per_second(cfg, batch, crop, n)
        lines.append(f"| {name} | {params / 1e6:.2f} M | {batch} x {crop} | {sps:.3f} |")
        print(lines[-1], flush=True)

    lines += ["", "## GPU memory of one training step, default config (512 ch x 20 layers), fp16 autocast", "",
              "| batch x crop | grad. checkpointing | weights+grads+AdamW | fp16 weight copies | activations | step total | "
              "budget (x1.2 allocator slack + 1 GiB CUDA context) | margin to 6 GiB |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for batch, gc in [(d.batch_size, False), (48, False), (d.batch_size, True)]:
        e = estimate_training_memory(DEFAULT, batch, d.crop_frames, half=True, grad_checkpointing=gc)
        state = e["weights"] + e["grads"] + e["adam"]
        lines.append(f"| {batch} x {d.crop_frames} | {'yes' if gc else 'no'} | {state / GIB:.2f} GiB | "
                     f"{e['weight_copies'] / GIB:.2f} GiB | {e['activations'] / GIB:.2f} GiB | {e['total'] / GIB:.2f} GiB | "
                     f"{budget(e['total']):.2f} GiB | {6 - budget(e['total']):.2f} GiB |")  # fmt: skip
        print(lines[-1], flush=True)

    hook, grown = rss_crosscheck(DEFAULT, 8, d.crop_frames)
    lines += ["", f"Cross-check (default config, batch 8 x {d.crop_frames}, fp32 on CPU): activations by the saved-tensor "
              f"hook {hook:.0f} MiB; process RSS growth while one forward graph is alive {grown:.0f} MiB."]  # fmt: skip
    print(lines[-1], flush=True)

    if not a.skip_time_to_loss:
        step, secs, rows = time_to_loss(0.85, 400, a.threads)
        lines += ["", "## Time to loss: tiny config on 12 LJSpeech clips (stand-in features), batch 8 x 64, lr 5e-3", "",
                  f"Validation loss below 0.85 (untrained ~1.0): step {step}, {secs} s of training.", "",
                  "| step | val loss | seconds |", "| --- | --- | --- |"]  # fmt: skip
        lines += [f"| {r['step']} | {r['val_loss']:.4f} | {r['seconds']:.1f} |" for r in rows]
    print_report(lines, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
