"""NSF-HiFiGAN speed: x realtime for N seconds of audio, upstream-style inference vs svcover's fast path.

Usage: python benchmarks/vocoder.py [--seconds 30] [--threads 2] [--variants upstream,folded,fast] [--compile]

Weights are full-size stand-ins built from the release schema (../shared/reference/nsf_hifigan, or
$SVCOVER_SHARED/reference/nsf_hifigan) when it is there, else the network's random init: speed does not depend
on the values. Variants:

* ``upstream``: what the reference loaders do at inference: weight norm live (the effective weight is
  recomputed from g and v in every forward), ``torch.no_grad``, plain Conv1d layout, the whole input in one pass.
* ``folded``: weight norm folded once at load, ``torch.inference_mode``, in-place activations, 256-frame chunks.
* ``fast`` (svcover's default on CPU): ``folded`` + channels-last 2-D convolutions.
* ``compiled`` (with ``--compile``): ``fast`` through ``torch.compile`` (inductor; needs a C++ compiler).

Wall time and process CPU time are both printed; on a shared machine wall time depends on the load, so the
load average is printed too.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import _common as common  # noqa: E402  (importable once the repository root is on sys.path)


def stand_in_state():
    schema = common.REFERENCE / "nsf_hifigan" / "schema.json"
    if not ((common.REFERENCE / "weights_from_schema.py").is_file() and schema.is_file()):
        return None
    builder = common.weights_builder()
    return builder.make_state_dict(builder.load_schema(schema), 2002)


def test_signal(seconds: float, hop: int = 512, sr: int = 44100):
    """A plausible mel/f0 pair: a voiced glide with vibrato and some unvoiced gaps."""
    import numpy as np

    frames = int(seconds * sr / hop)
    t = np.arange(frames) * hop / sr
    f0 = 220 * 2 ** (np.sin(2 * np.pi * 0.1 * t) / 2) * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t))
    f0[(t % 4) > 3.6] = 0  # breaths
    rng = np.random.default_rng(0)
    bins = np.arange(128)[:, None]
    mel = -4 - bins / 20 + 1.5 * np.sin(bins / 7 + t[None] * 3) + 0.3 * rng.standard_normal((128, frames))
    return mel.astype(np.float32), f0.astype(np.float32)


def upstream_style(voc):
    """A copy of the generator with live weight norm (parametrizations recompute the weight on every call)."""
    import copy

    import torch
    from torch.nn.utils.parametrizations import weight_norm

    gen = copy.deepcopy(voc.generator)
    for name, module in list(gen.named_modules()):
        if isinstance(module, torch.nn.Conv1d | torch.nn.ConvTranspose1d) and not name.startswith("noise_convs"):
            weight_norm(module)
    return gen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="audio length to vocode")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--variants", default="upstream,folded,fast", help="comma list of upstream,folded,fast")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of the fast path")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per variant (best is reported)")
    args = parser.parse_args()

    import numpy as np
    import torch

    from core.vocoder import DEFAULT_CHUNK_FRAMES, NsfHifiGan, VocoderConfig

    torch.set_num_threads(args.threads)
    state = stand_in_state()
    if state is None:
        from core.vocoder import build_generator

        state = build_generator(VocoderConfig()).state_dict()
    fast = NsfHifiGan.from_state_dict(state, fast=True)
    folded = NsfHifiGan.from_state_dict(state, fast=False)
    mel, f0 = test_signal(args.seconds)
    mel_t, f0_t = torch.from_numpy(mel)[None], torch.from_numpy(f0)[None]
    warm_mel, warm_f0 = mel_t[..., :200], f0_t[..., :200]

    runs = {}
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if "upstream" in variants:
        gen = upstream_style(folded)

        def run_upstream(m, f):
            with torch.no_grad():
                return gen(m, f, deterministic=True)

        runs["upstream"] = run_upstream
    if "folded" in variants:
        runs["folded"] = lambda m, f: folded.vocode_tensor(m, f, deterministic=True, chunk_frames=DEFAULT_CHUNK_FRAMES)
    if "fast" in variants:
        runs["fast"] = lambda m, f: fast.vocode_tensor(m, f, deterministic=True, chunk_frames=DEFAULT_CHUNK_FRAMES)
    if args.compile:
        compiled = torch.compile(fast._filter.__call__, dynamic=True)

        def run_compiled(m, f):
            with torch.inference_mode():
                return compiled(m, fast.generator.m_source(f, deterministic=True))

        runs["compiled"] = run_compiled

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {args.threads} threads, {args.seconds:.0f} s of audio, load avg {load:.1f}")
    reference = None
    for name, fn in runs.items():
        t0 = time.perf_counter()
        fn(warm_mel, warm_f0)  # warm-up (and compilation for 'compiled')
        warm = time.perf_counter() - t0
        best_wall, best_cpu = float("inf"), float("inf")
        for _ in range(args.repeats):
            w0, c0 = time.perf_counter(), time.process_time()
            out = fn(mel_t, f0_t)
            best_wall = min(best_wall, time.perf_counter() - w0)
            best_cpu = min(best_cpu, time.process_time() - c0)
        out = out.reshape(-1).numpy()
        if reference is None:
            reference = out
        diff = float(np.abs(out - reference).max())
        print(
            f"{name:9s} wall {best_wall:7.2f} s ({args.seconds / best_wall:5.2f}x realtime)  "
            f"cpu {best_cpu:7.2f} s  warm-up {warm:5.1f} s  max|diff| vs first {diff:.1e}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
