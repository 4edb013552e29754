"""Separation models at their real size with RANDOM weights: size, CPU time per minute, activation memory.

Real weights cannot be downloaded on the benchmark machine, so each network is built from
audio-separator's own model classes with the architecture its published config states, and random
initialisation. Speed and memory depend on the architecture and the tensor sizes, not on the weight
values, so these are the numbers the real models have (up to numerical kernels that skip zeros,
which none of these use).

* Mel-Band Roformer (vocals_mel_band_roformer.ckpt): the dims of the publisher's
  config_vocals_mel_band_roformer.yaml (dim 384, depth 6, 60 mel bands, 8 heads x 64, 2048-point STFT,
  hop 441, segment 801 frames = 8 s). Run through audio-separator's MelBandRoformer.
* MDX-Net (UVR-MDX-NET-Voc_FT.onnx): audio-separator's ConvTDFNet (the MDX-Net layout) with the
  published model-data parameters (dim_f 3072, dim_t 256, n_fft 7680, hop 1024) and MDX-Net block
  hyper-parameters (11 blocks, l 3, g 48, k 3, bn 8) chosen because their float32 weights (69.9 MB)
  come closest to the ~66 MB ONNX file; the exact layout of that file is not published, so this is
  a same-family proxy. Timed in torch on the CPU (svcover runs the ONNX file with ONNX Runtime,
  which is usually as fast or faster on a CPU).

CPU seconds per minute: the process CPU time of one segment's forward pass times the number of
segments svcover runs per minute of audio (Roformer: audio-separator's MDXC overlap 2 -> one
segment every 4 s; MDX: audio-separator's MDX overlap 0.25 -> one 256-frame segment every 4.4 s),
plus svcover's 2 s window overlap (30 s windows). Activation memory: peak RSS growth (VmHWM) of a
fresh process during one segment's forward pass, after the model and the input were created; on
CPU torch uses the same memory-efficient scaled-dot-product attention kernels as on CUDA.

Usage: python benchmarks/separation.py [--threads 2] [--repeats 2] [--skip-mdx]
Prints one JSON line per measurement; numbers go to BENCHMARKS.md by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

# Idle OpenMP threads must not spin: on a shared CPU spinning inflates CPU time (see BENCHMARKS.md caveats).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parent.parent
SR = 44100

KIM_VOCALS = {
    "dim": 384, "depth": 6, "stereo": True, "num_stems": 1, "time_transformer_depth": 1,
    "freq_transformer_depth": 1, "num_bands": 60, "dim_head": 64, "heads": 8, "attn_dropout": 0.0,
    "ff_dropout": 0.0, "flash_attn": True, "dim_freqs_in": 1025, "sample_rate": SR, "stft_n_fft": 2048,
    "stft_hop_length": 441, "stft_win_length": 2048, "stft_normalized": False, "mask_estimator_depth": 2,
}  # fmt: skip
ROFORMER_HOP = 441
MDX = {"dim_c": 4, "dim_f": 3072, "dim_t": 256, "n_fft": 7680, "hop_length": 1024,
       "num_blocks": 11, "l": 3, "g": 48, "k": 3, "bn": 8, "bias": False}  # fmt: skip
WINDOW_OVERHEAD = 30.0 / 28.0  # svcover's 30 s windows overlap by 2 s


def build_roformer(config: dict):  # noqa: ANN201 - a torch module
    from audio_separator.separator.uvr_lib_v5.roformer.mel_band_roformer import MelBandRoformer

    return MelBandRoformer(**config).eval()


def build_mdx():  # noqa: ANN201 - a torch module
    import torch

    # mdxnet.py imports pytorch_lightning only for its LightningModule base class; nn.Module stands in
    if "pytorch_lightning" not in sys.modules:
        stub = types.ModuleType("pytorch_lightning")
        stub.LightningModule = torch.nn.Module  # type: ignore[attr-defined]
        sys.modules["pytorch_lightning"] = stub
    from audio_separator.separator.uvr_lib_v5.mdxnet import ConvTDFNet

    return ConvTDFNet(target_name="vocals", lr=0.0, optimizer="rmsprop", overlap=0, **MDX).eval()


def param_mb(model) -> float:  # noqa: ANN001
    return sum(p.numel() for p in model.parameters()) * 4 / 1e6


def segment_input(kind: str, frames: int):  # noqa: ANN201
    import torch

    torch.manual_seed(0)
    if kind == "roformer":
        return torch.randn(1, 2, ROFORMER_HOP * (frames - 1)) * 0.1
    n_bins = MDX["n_fft"] // 2 + 1
    del n_bins
    return torch.randn(1, MDX["dim_c"], MDX["dim_f"], MDX["dim_t"]) * 0.1


def time_segment(kind: str, frames: int, repeats: int) -> float:
    """Median process CPU seconds of one segment's forward pass (after one warm-up)."""
    import torch

    model = build_roformer(KIM_VOCALS) if kind == "roformer" else build_mdx()
    x = segment_input(kind, frames)
    times = []
    with torch.no_grad():
        model(segment_input(kind, 16) if kind == "roformer" else x)  # warm-up (lazy initialisation)
        for _ in range(repeats):
            c0 = time.process_time()
            model(x)
            times.append(time.process_time() - c0)
    times.sort()
    return times[len(times) // 2]


def segments_per_minute(kind: str, frames: int, overlap: int = 2) -> float:
    if kind == "roformer":
        step_seconds = ROFORMER_HOP * (frames - 1) / overlap / SR
    else:  # audio-separator's MDX: chunk = hop * (dim_t - 1), hop between chunks = chunk * (1 - 0.25)
        step_seconds = MDX["hop_length"] * (MDX["dim_t"] - 1) * 0.75 / SR
    return 60.0 / step_seconds * WINDOW_OVERHEAD


def peak_activation_mb(kind: str, frames: int, threads: int) -> dict:
    """Peak RSS growth during one forward pass, in a fresh process."""
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(ROOT)!r})
        import torch
        torch.set_num_threads({threads})
        from benchmarks.separation import build_mdx, build_roformer, segment_input, KIM_VOCALS
        def status(key):
            return int(next(l for l in open('/proc/self/status') if l.startswith(key)).split()[1]) / 1024
        model = build_roformer(KIM_VOCALS) if {kind!r} == "roformer" else build_mdx()
        x = segment_input({kind!r}, {frames})
        with torch.no_grad():
            model(segment_input({kind!r}, 16 if {kind!r} == "roformer" else {frames}))  # lazy init, small
        base = status('VmRSS:')
        with torch.no_grad():
            y = model(x)
        print(json.dumps({{"base_rss_mb": base, "peak_mb": status('VmHWM:'), "out_shape": list(y.shape)}}))
    """)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["activation_mb"] = out["peak_mb"] - out["base_rss_mb"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU time is not inflated by contention)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--skip-mdx", action="store_true")
    parser.add_argument("--frames", type=int, nargs="*", default=[801, 256], help="Roformer segment sizes to measure")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    print(json.dumps({"machine": os.uname().machine, "cpus": os.cpu_count(), "threads": args.threads,
                      "load_1min": round(load, 2), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}))  # fmt: skip
    print(json.dumps({"model": "mel_band_roformer (Kim vocals dims)", "size_mb_fp32": round(param_mb(build_roformer(KIM_VOCALS)), 1)}))
    for frames in args.frames:
        cpu = time_segment("roformer", frames, args.repeats)
        mem = peak_activation_mb("roformer", frames, args.threads)
        print(json.dumps({"model": "mel_band_roformer", "segment_frames": frames,
                          "segment_seconds": round(ROFORMER_HOP * (frames - 1) / SR, 2),
                          "cpu_s_per_segment": round(cpu, 2),
                          "cpu_s_per_min": round(cpu * segments_per_minute("roformer", frames), 1),
                          "activation_mb": round(mem["activation_mb"], 1), "peak_rss_mb": round(mem["peak_mb"], 1)}))  # fmt: skip
    if not args.skip_mdx:
        model = build_mdx()
        cpu = time_segment("mdx", MDX["dim_t"], args.repeats)
        mem = peak_activation_mb("mdx", MDX["dim_t"], args.threads)
        print(json.dumps({"model": "mdx_net (Voc_FT dims)", "size_mb_fp32": round(param_mb(model), 1),
                          "cpu_s_per_segment": round(cpu, 2),
                          "cpu_s_per_min": round(cpu * segments_per_minute("mdx", MDX["dim_t"]), 1),
                          "activation_mb": round(mem["activation_mb"], 1)}))  # fmt: skip


if __name__ == "__main__":
    main()
