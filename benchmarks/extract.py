"""Benchmark of the Extract stage on the CPU: × realtime of each extractor and of the whole stage, peak RSS.

    python benchmarks/extract.py [--seconds 60] [--threads 2] [--f0 rmvpe] [--device cpu] [--omp-passive]

Weights: ``$SVCOVER_PRETRAINED`` (or ``pretrained/``) is used when it holds ``content/hubert_base.pt``
and ``rmvpe/rmvpe.pt``; otherwise full-size deterministic stand-ins are built from the shared schemas
(``../shared/reference``, or ``$SVCOVER_SHARED/reference``) in a temporary folder, in a child process
so that building them does not count in the peak RSS. Speed does not depend on the weight values,
so stand-ins measure the same thing as the released files. Nothing is downloaded.

Audio: synthetic singing and LJSpeech clips from ``shared/data`` cut into 8 s chunks (a typical
dataset chunk length), repeated up to ``--seconds`` of audio.

Threads: on a CPU shared with other busy processes, OpenMP's default spin-waiting makes 2 torch threads
several times *slower* than 1 (a thread spins through its time slice waiting for a descheduled partner);
``--omp-passive`` sets ``OMP_WAIT_POLICY=PASSIVE`` before torch loads, which avoids that. Compare CPU
time per audio second between settings; on an idle machine the default is fine.

The last line printed is one JSON object: ``x_realtime`` (whole stage, models loaded, from nothing
cached), ``peak_rss_mb`` (this process), and ``x_realtime_<extractor>`` for each extractor.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import _common as common  # noqa: E402  (importable once the repository root is on sys.path)

CHUNK_SECONDS = 8.0


def build_standins(root: Path) -> None:
    """Full-size stand-in ``content/hubert_base.pt`` (fairseq layout) and ``rmvpe/rmvpe.pt`` under ``root``."""
    builder = common.weights_builder()
    content = root / "content" / "hubert_base.pt"
    if not content.is_file():
        common.write_full_size_hubert(content, builder)
    rmvpe = root / "rmvpe" / "rmvpe.pt"
    if not rmvpe.is_file():
        common.write_full_size_rmvpe(rmvpe, builder)


def make_chunks(seconds: float) -> list:
    """8 s chunks of real speech and synthetic singing at 44.1 kHz, ``seconds`` in total."""
    import numpy as np
    import soundfile as sf
    import soxr

    data = common.SHARED / "data"
    sources = sorted((data / "synthetic").glob("*.wav")) + sorted((data / "real" / "speech_ljspeech").glob("*.wav"))[:6]
    pieces = []
    for path in sources:
        wav, sr = sf.read(str(path), dtype="float32", always_2d=True)
        wav = soxr.resample(wav.mean(axis=1), sr, 44100) if sr != 44100 else wav.mean(axis=1)
        pieces.append(wav)
    audio = np.concatenate(pieces)
    n_total, n_chunk = int(seconds * 44100), int(CHUNK_SECONDS * 44100)
    audio = np.resize(audio, n_total)  # repeats the material if more is asked for than exists
    return [audio[i : i + n_chunk] for i in range(0, n_total, n_chunk) if n_total - i > 44100]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="audio to process (default 60)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--f0", default="rmvpe", help="F0 method of the whole-stage run (default rmvpe)")
    parser.add_argument("--device", default="cpu", help="device (default cpu)")
    parser.add_argument("--methods", default="rmvpe,fcpe,parselmouth,harvest", help="F0 methods timed one by one")
    parser.add_argument("--omp-passive", action="store_true",
                        help="set OMP_WAIT_POLICY=PASSIVE (sleeping, not spinning, OpenMP threads) before torch loads")
    parser.add_argument("--build-standins", metavar="DIR", help=argparse.SUPPRESS)  # child-process mode
    args = parser.parse_args()
    if args.build_standins:
        build_standins(Path(args.build_standins))
        return 0

    if args.omp_passive:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # read once, when the OpenMP runtime starts (with torch)
    import soundfile as sf
    import soxr
    import torch

    torch.set_num_threads(args.threads)
    from core import pretrained

    tmp = Path(tempfile.mkdtemp(prefix="svcover-bench-extract-"))
    have_real = all((pretrained.pretrained_root() / p).is_file() for p in (pretrained.RMVPE,)) and any(
        (pretrained.pretrained_root() / p).is_file() for p in (pretrained.CONTENT_ENCODER, pretrained.CONTENT_ENCODER_ALT)
    )
    if not have_real:
        root = tmp / "pretrained"
        print(f"building full-size stand-in weights in {root} ...", file=sys.stderr)
        subprocess.run([sys.executable, __file__, "--build-standins", str(root)], check=True)
        os.environ["SVCOVER_PRETRAINED"] = str(root)
    os.environ["SVCOVER_LOGS"] = str(tmp / "logs")

    from core.experiment import Experiment
    from core.features.contentvec import ContentVec
    from core.features.extract import ExtractConfig, run_extract
    from core.features.f0 import clear_model_cache, estimate_f0, load_model
    from core.features.loudness import frame_volume, loudness_db
    from core.features.mel import log_mel

    chunks = make_chunks(args.seconds)
    audio_s = sum(c.size for c in chunks) / 44100
    chunks16 = [soxr.resample(c, 44100, 16000) for c in chunks]
    results: dict[str, float] = {}

    def timed(name: str, fn, inputs) -> None:
        fn(inputs[0][: 44100 * 2])  # warm-up (first-call allocations, lazy imports)
        start, cpu = time.perf_counter(), time.process_time()
        for x in inputs:
            fn(x)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        results[f"x_realtime_{name}"] = round(audio_s / wall, 2)
        results[f"cpu_s_per_audio_s_{name}"] = round(cpu / audio_s, 4)
        print(f"{name:>14}: {results[f'x_realtime_{name}']:7.2f} x realtime (wall), "
              f"{cpu / audio_s:.3f} CPU-s per audio-s", file=sys.stderr)  # fmt: skip

    # The whole stage first (fresh process state: model loading counts, as for a user).
    exp = Experiment.open("bench")
    exp.gt_wavs.mkdir(parents=True)
    exp.wavs16k.mkdir(parents=True)
    for i, (c44, c16) in enumerate(zip(chunks, chunks16, strict=True)):
        sf.write(exp.gt_wavs / f"chunk_{i:03d}.wav", c44, 44100, subtype="PCM_16")
        sf.write(exp.wavs16k / f"chunk_{i:03d}.wav", c16, 16000, subtype="PCM_16")
    load_before = os.getloadavg()[0]
    start, cpu = time.perf_counter(), time.process_time()
    report = run_extract("bench", ExtractConfig(f0_method=args.f0, device=args.device))
    stage_s, stage_cpu = time.perf_counter() - start, time.process_time() - cpu
    results["x_realtime"] = round(audio_s / stage_s, 2)
    results["cpu_s_per_audio_s"] = round(stage_cpu / audio_s, 4)
    # What the wall clock would be with the threads running undisturbed (CPU time / threads): the
    # machine is shared, so the wall-clock figure above depends on what else runs.
    results["x_realtime_if_unloaded"] = round(audio_s / (stage_cpu / args.threads), 2)
    results["peak_rss_mb"] = round(common.peak_rss_mb(), 1)
    print(f"{'whole stage':>14}: {results['x_realtime']:7.2f} x realtime ({audio_s:.0f} s of audio in {stage_s:.1f} s, "
          f"{report.n_chunks} chunks, f0={args.f0})", file=sys.stderr)  # fmt: skip
    start = time.perf_counter()
    run_extract("bench", ExtractConfig(f0_method=args.f0, device=args.device))
    results["cached_rerun_s"] = round(time.perf_counter() - start, 2)

    start, cpu = time.perf_counter(), time.process_time()
    content = ContentVec.from_pretrained(args.device)
    results["load_s_contentvec"] = round(time.perf_counter() - start, 2)
    results["load_cpu_s_contentvec"] = round(time.process_time() - cpu, 2)
    timed("contentvec", lambda w: content.extract(w, layer=12), chunks16)
    for method in [m for m in args.methods.split(",") if m]:
        if method in ("rmvpe", "fcpe"):
            start, cpu = time.perf_counter(), time.process_time()
            load_model(method, args.device)
            results[f"load_s_{method}"] = round(time.perf_counter() - start, 2)
            results[f"load_cpu_s_{method}"] = round(time.process_time() - cpu, 2)
        timed(f"f0_{method}", lambda w, m=method: estimate_f0(w, method=m, device=args.device), chunks)
        clear_model_cache()
    timed("mel", log_mel, chunks)
    timed("loudness", lambda w: (loudness_db(w), frame_volume(w)), chunks)

    results["load_average_1min"] = round((load_before + os.getloadavg()[0]) / 2, 1)
    results["audio_seconds"] = round(audio_s, 1)
    results["threads"] = args.threads
    results["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY", "default")
    # Steady state of the whole stage: the extractors' CPU time without model loading, as × realtime
    # per thread-second (what a long dataset approaches; × threads on an idle machine at best).
    steady = sum(results[f"cpu_s_per_audio_s_{n}"] for n in ("contentvec", f"f0_{args.f0}", "mel", "loudness")
                 if f"cpu_s_per_audio_s_{n}" in results)
    results["steady_cpu_s_per_audio_s"] = round(steady, 4)
    results["peak_rss_mb_all"] = round(common.peak_rss_mb(), 1)
    results["weights_built_here"] = not have_real  # full-size stand-ins from the schemas
    print(json.dumps({"x_realtime": results.pop("x_realtime"), "peak_rss_mb": results.pop("peak_rss_mb"), **results}))
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
