"""Speed of the content encoder: ``ContentVec.extract`` on N seconds of 16 kHz audio, as x realtime.

    python benchmarks/contentvec_speed.py                      # random full-size HuBERT-base weights
    python benchmarks/contentvec_speed.py --checkpoint pretrained/content/hubert_base.pt --device cuda

Speed does not depend on the weight values, so without ``--checkpoint`` a randomly initialised
HuBERT-base of the real size is timed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a hubert_base.pt to load (default: random weights, same size)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, auto (default: cpu)")
    parser.add_argument("--half", action="store_true", help="float16 on CUDA")
    parser.add_argument("--seconds", type=float, default=10.0, help="audio length (default: 10)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs after one warm-up (default: 5)")
    parser.add_argument("--layer", type=int, default=12, help="output layer (default: 12)")
    args = parser.parse_args()

    import numpy as np
    import torch

    from core.features.contentvec import ContentVec
    from core.features.hubert import HubertBase, HubertConfig

    torch.set_num_threads(args.threads)
    if args.checkpoint:
        enc = ContentVec.from_checkpoint(args.checkpoint, device=args.device, half=args.half)
    else:
        torch.manual_seed(0)
        enc = ContentVec(model=HubertBase(HubertConfig()).eval(), device="cpu", source="random weights")
    wav = (0.1 * np.random.default_rng(0).standard_normal(int(args.seconds * 16000))).astype(np.float32)
    enc.extract(wav, layer=args.layer)  # warm-up
    times, cpu_times = [], []
    for _ in range(args.repeats):
        cpu_start = time.process_time()
        start = time.perf_counter()
        if enc.device.startswith("cuda"):
            torch.cuda.synchronize()
        enc.extract(wav, layer=args.layer)
        if enc.device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    med = statistics.median(times)
    print(
        f"ContentVec extract, {args.seconds:g} s audio, layer {args.layer}, device {enc.device}, "
        f"threads {torch.get_num_threads()}: median {med:.3f} s (min {min(times):.3f} s) "
        f"= {args.seconds / med:.1f}x realtime ({args.seconds / min(times):.1f}x best); "
        f"CPU time per run {statistics.median(cpu_times):.2f} s (on a busy machine wall time / CPU time "
        "shows how much of the time was spent waiting for a core)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
