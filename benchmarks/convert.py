"""Benchmark of conversion on the CPU: real-time factor of the default setting vs PNDM-100, broken down.

    python benchmarks/convert.py [--seconds 30] [--threads 2] [--input FILE] [--compare pndm:100]

Weights: ``$SVCOVER_PRETRAINED`` (or ``pretrained/``) is used for every file it holds
(``content/hubert_base.pt``, ``rmvpe/rmvpe.pt``, ``nsf_hifigan/model`` + ``config.json``,
``diffusion_svc/model_0.pt`` + ``config.yaml``); each missing one is replaced by a full-size deterministic
stand-in built from the shared schemas (``../shared/reference`` or ``$SVCOVER_SHARED/reference``) in a
temporary folder, in a child process (so building them does not count in the peak RSS). Speed does not
depend on the weight values, so stand-ins measure the same work as the released files. Nothing is downloaded.

Audio: the first ``--seconds`` of a real solo vocal (vocadito_1, 33 s of a cappella singing).

Each setting runs the whole conversion of the input (``core.convert.convert_waveform``: features, sampler,
vocoder, joins), with the models loaded once beforehand (load time is reported apart). Wall time and CPU time
are both reported: the machine may be shared, and CPU time / threads is what an idle machine would take.

The last line printed is one JSON object:
``{"rtf_default": …, "rtf_pndm100": …, "speedup": …, "seconds_audio": …, ...details}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import _common as common  # noqa: E402  (importable once the repository root is on sys.path)

CONTENT = "content/hubert_base.pt"
RMVPE = "rmvpe/rmvpe.pt"
VOCODER = "nsf_hifigan/model"
DECODER = "diffusion_svc/model_0.pt"


def build_standins(root: Path, which: list[str]) -> None:
    """Full-size stand-ins of the files in ``which`` under ``root``, laid out like the released files."""
    import torch
    import yaml

    builder = common.weights_builder()
    if CONTENT in which:
        common.write_full_size_hubert(root / CONTENT, builder)
    if RMVPE in which:
        common.write_full_size_rmvpe(root / RMVPE, builder)
    if VOCODER in which:
        folder = (root / VOCODER).parent
        folder.mkdir(parents=True, exist_ok=True)
        state = builder.make_state_dict(builder.load_schema(str(common.REFERENCE / "nsf_hifigan" / "schema.json")), 1)
        torch.save({"generator": state}, folder / "model")
        shutil.copy(common.REFERENCE / "nsf_hifigan" / "config.json", folder / "config.json")
    if DECODER in which:
        folder = (root / DECODER).parent
        folder.mkdir(parents=True, exist_ok=True)
        schema = json.loads((common.REFERENCE / "diffusion_svc" / "schema.json").read_text())["keys"]
        state = builder.make_state_dict(schema, 1)
        # The schedule buffers are formulas, not random values: let the model recompute them.
        state = {k: v for k, v in state.items() if not k.startswith("decoder.") or "denoise_fn" in k}
        torch.save({"global_step": 0, "model": state}, folder / "model_0.pt")
        cfg = json.loads((common.REFERENCE / "diffusion_svc" / "config.json").read_text())
        yml = {"data": cfg["data"], "model": cfg["model"], "vocoder": cfg["vocoder"]}
        (folder / "config.yaml").write_text(yaml.safe_dump(yml), encoding="utf-8")


def load_vocal(seconds: float):
    import numpy as np

    from core.audio import load_audio

    wav = load_audio(common.SHARED / "data" / "real" / "singing" / "vocadito_1.wav", 44100)
    n = int(seconds * 44100)
    return np.resize(wav, n).astype(np.float32)  # repeats the material if more is asked for than exists


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds of vocal to convert (default 30)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--compare", default="pndm:100", help="reference setting SAMPLER:STEPS (default pndm:100)")
    parser.add_argument("--default", dest="default_setting", default=None,
                        help="the setting measured as the default, SAMPLER:STEPS (default: core.convert's default)")
    parser.add_argument("--also", default="", help="more settings to time, SAMPLER:STEPS,... (reported apart)")
    parser.add_argument("--f0", default="rmvpe", help="F0 method (default rmvpe)")
    parser.add_argument("--build-standins", metavar="DIR", help=argparse.SUPPRESS)  # child-process mode
    parser.add_argument("--which", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_standins:
        build_standins(Path(args.build_standins), [w for w in args.which.split(",") if w])
        return 0

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from core import pretrained
    from core.config import save_json
    from core.convert import ConvertConfig, Models, convert_waveform
    from core.experiment import Experiment

    tmp = Path(tempfile.mkdtemp(prefix="svcover-bench-convert-"))
    real_root = pretrained.pretrained_root()
    have = {f: (real_root / f).is_file() for f in (CONTENT, RMVPE, VOCODER, DECODER)}
    have[VOCODER] = have[VOCODER] or (real_root / "nsf_hifigan" / "model.ckpt").is_file()
    missing = [f for f, ok in have.items() if not ok]
    root = real_root
    if missing:
        root = tmp / "pretrained"
        print(f"building full-size stand-ins for {', '.join(missing)} in {root} ...", file=sys.stderr)
        subprocess.run([sys.executable, __file__, "--build-standins", str(root), "--which", ",".join(missing)], check=True)
        for f, ok in have.items():  # the real files that exist are used as they are
            if ok:
                src = real_root / f
                for item in [src] if f != VOCODER else list(src.parent.iterdir()):
                    (root / f).parent.mkdir(parents=True, exist_ok=True)
                    os.symlink(item, root / f if f != VOCODER else root / "nsf_hifigan" / item.name)
        os.environ["SVCOVER_PRETRAINED"] = str(root)
    os.environ["SVCOVER_LOGS"] = str(tmp / "logs")

    exp = Experiment.open("bench")
    exp.root.mkdir(parents=True)
    # A voice model trained on a typical mid-range voice: only the F0 range and the encoder matter here.
    save_json(exp.stats, {"f0_hz_p5": 110.0, "f0_hz_p50": 180.0, "f0_hz_p95": 330.0, "encoder": "contentvec768l12",
                          "f0_method": args.f0, "units_dim": 768})  # fmt: skip
    base = ConvertConfig(device="cpu", ckpt=str(root / DECODER), f0_method=args.f0)
    default_sampler, default_steps = base.sampler, base.steps
    if args.default_setting:
        default_sampler, default_steps = args.default_setting.split(":")[0], int(args.default_setting.split(":")[1])
    ref_sampler, ref_steps = args.compare.split(":")[0], int(args.compare.split(":")[1])

    wav = load_vocal(args.seconds)
    seconds_audio = wav.size / 44100
    load_before = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    models = Models.load(exp, base, "cpu")
    # Load the lazily built extractors too (ContentVec, RMVPE): a user pays this once per session.
    content_fn, f0_fn = models.extractors.content(), models.extractors.f0()
    models.extractors.content = lambda: content_fn
    models.extractors.f0 = lambda: f0_fn
    load_s = time.perf_counter() - t0
    print(f"models loaded in {load_s:.1f} s (CPU {time.process_time() - c0:.1f} s)", file=sys.stderr)
    # Warm-up on 2 s (first-call allocations, oneDNN kernel selection): not counted.
    convert_waveform(wav[: 2 * 44100], models, ConvertConfig(device="cpu", sampler="ddim", steps=2))

    settings = [("default", default_sampler, default_steps), ("reference", ref_sampler, ref_steps)]
    for extra in [e for e in args.also.split(",") if e]:
        settings.append((extra, extra.split(":")[0], int(extra.split(":")[1])))
    runs = {}
    for label, sampler, steps in settings:
        cfg = ConvertConfig(device="cpu", sampler=sampler, steps=steps, seed=0)
        t0, c0 = time.perf_counter(), time.process_time()
        out, result = convert_waveform(wav, models, cfg)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        assert np.isfinite(out).all() and out.size == wav.size
        runs[label] = {"sampler": sampler, "steps": steps, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                       "rtf": round(wall / seconds_audio, 3), "rtf_cpu_over_threads": round(cpu / args.threads / seconds_audio, 3),
                       **{f"{k}_s": round(v, 2) for k, v in result.timings.items()}}  # fmt: skip
        r = runs[label]
        print(f"{label:>9} {sampler}-{steps}: {wall:.1f} s wall (RTF {r['rtf']:.2f}), CPU {cpu:.1f} s; "
              f"features {r['features_s']:.1f} s (CPU {r.get('features_cpu_s', 0):.1f}), sampling {r['sampling_s']:.1f} s "
              f"(CPU {r.get('sampling_cpu_s', 0):.1f}), vocoder {r['vocoder_s']:.1f} s (CPU {r.get('vocoder_cpu_s', 0):.1f})",
              file=sys.stderr)  # fmt: skip

    d, ref = runs["default"], runs["reference"]
    summary = {
        "rtf_default": d["rtf"],
        f"rtf_{ref_sampler.replace('-', '').replace('+', 'p')}{ref_steps}": ref["rtf"],
        "speedup": round(ref["wall_s"] / d["wall_s"], 2),
        "seconds_audio": round(seconds_audio, 2),
        "speedup_cpu": round(ref["cpu_s"] / d["cpu_s"], 2),
        "default": d,
        "reference": ref,
        "also": {k: v for k, v in runs.items() if k not in ("default", "reference")},
        "load_models_s": round(load_s, 2),
        "threads": args.threads,
        "load_average_1min": round((load_before + os.getloadavg()[0]) / 2, 1),
        "peak_rss_mb": round(common.peak_rss_mb(), 1),
        "stand_in_weights": missing,
    }
    print(json.dumps(summary))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
