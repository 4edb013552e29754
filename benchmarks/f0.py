"""Speed of every F0 method (``estimate_f0`` on N seconds of 44.1 kHz synthetic singing), as x realtime.

    python benchmarks/f0.py                        # rmvpe with random weights of the real size
    python benchmarks/f0.py --rmvpe pretrained/rmvpe/rmvpe.pt --device cuda

RMVPE's speed does not depend on its weight values, so without ``--rmvpe`` a stand-in checkpoint of
the real size (random weights, float16 like the released file) is written to a temp folder and timed.
Also times ``log_mel``. Each number is the median of ``--repeats`` runs after one warm-up run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import _common as common  # noqa: E402  (importable once the repository root is on sys.path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rmvpe", help="an rmvpe.pt to load (default: random weights of the real size)")
    parser.add_argument("--device", default="cpu", help="torch device for rmvpe/fcpe (default: cpu)")
    parser.add_argument("--seconds", type=float, default=10.0, help="audio length (default: 10)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up (default: 3)")
    parser.add_argument("--methods", default="rmvpe,fcpe,harvest,parselmouth", help="comma-separated list")
    args = parser.parse_args()

    import soundfile as sf
    import torch

    from core.features.f0 import estimate_f0, load_model
    from core.features.f0.rmvpe import RmvpeNet
    from core.features.mel import log_mel

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        script = common.SHARED / "data" / "make_synthetic_singing.py"
        prefix = Path(tmp) / "bench"
        subprocess.run([sys.executable, str(script), "--out", str(prefix), "--seed", "3",
                        "--duration", str(args.seconds)], check=True, capture_output=True)
        wav, _ = sf.read(f"{prefix}.wav", dtype="float32")
        rmvpe_path = args.rmvpe
        if rmvpe_path is None:
            rmvpe_path = str(Path(tmp) / "rmvpe_random.pt")
            torch.save({k: v.half() if v.is_floating_point() else v for k, v in RmvpeNet().state_dict().items()},
                       rmvpe_path)

        def timed(fn) -> float:
            fn()
            runs = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                fn()
                runs.append(time.perf_counter() - start)
            return statistics.median(runs)

        seconds = wav.size / 44100
        print(f"{seconds:.1f} s of audio, {args.threads} torch threads, device {args.device}")
        print(f"{'log_mel':12s} {timed(lambda: log_mel(wav)):7.3f} s")
        for method in args.methods.split(","):
            kwargs = {"model_path": rmvpe_path} if method == "rmvpe" else {}
            if method in ("rmvpe", "fcpe"):
                start = time.perf_counter()
                load_model(method, args.device, kwargs.get("model_path"))
                print(f"{method + ' load':12s} {time.perf_counter() - start:7.3f} s")
            t = timed(lambda m=method, kw=kwargs: estimate_f0(wav, m, args.device, **kw))
            print(f"{method:12s} {t:7.3f} s  {seconds / t:6.1f} x realtime")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
