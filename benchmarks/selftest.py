"""Time of ``python -m core doctor --self-test`` per model: wall and process CPU seconds, load included.

    python benchmarks/selftest.py                     # full-size stand-ins (random weights) in a temp folder
    SVCOVER_PRETRAINED=pretrained python benchmarks/selftest.py --installed   # the models you have

The self-test's cost does not depend on the weight values, so stand-ins of the real size are built from the
``../shared/reference`` schemas (RMVPE, NSF-HiFiGAN, HuBERT base, Diffusion-SVC 512x20); separation uses the
tiny mask model of ``tests/tiny_uvr.py`` (audio-separator's own start-up dominates its time). Stand-ins fail
their checks, which is expected: only the times are measured here. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import _common as common  # noqa: E402  (importable once the repository root is on sys.path)


def build_stand_ins(root: Path) -> None:
    import torch

    wfs = common.weights_builder()
    ref = common.REFERENCE

    def state(schema: str) -> dict:
        return wfs.make_state_dict(wfs.load_schema(ref / schema), 0)

    (root / "rmvpe").mkdir(parents=True)
    torch.save(state("rmvpe/schema.json"), root / "rmvpe" / "rmvpe.pt")
    (root / "nsf_hifigan").mkdir()
    torch.save({"generator": state("nsf_hifigan/schema.json")}, root / "nsf_hifigan" / "model")
    (root / "nsf_hifigan" / "config.json").write_text((ref / "nsf_hifigan" / "config.json").read_text())
    (root / "content").mkdir()
    torch.save({"args": None, "cfg": {"model": common.HUBERT_BASE_MODEL_CFG, "task": {"normalize": False, "sample_rate": 16000}},
                "model": state("hubert/schema_hubert_base.json")}, root / "content" / "hubert_base.pt")  # fmt: skip
    from core.model.diffusion import SCHEDULE_BUFFERS

    dec = {k: v for k, v in state("diffusion_svc/schema.json").items()
           if k.rsplit(".", 1)[-1] not in (*SCHEDULE_BUFFERS, "spec_min", "spec_max")}  # fmt: skip
    (root / "diffusion_svc").mkdir()
    torch.save({"global_step": 0, "model": dec}, root / "diffusion_svc" / "model_0.pt")
    (root / "diffusion_svc" / "config.yaml").write_text("model:\n  type: Diffusion\n  n_layers: 20\n  n_chans: 512\n"
                                                        "  n_hidden: 256\n  use_pitch_aug: true\n")  # fmt: skip
    from core.pretrained import UVR_VOCALS_MODEL
    from tests.tiny_uvr import install_tiny_uvr

    install_tiny_uvr(root / "uvr", name=UVR_VOCALS_MODEL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--installed", action="store_true", help="time the models in $SVCOVER_PRETRAINED as they are")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="svcover-bench-selftest-") as tmp:
        if not args.installed:
            os.environ["SVCOVER_PRETRAINED"] = str(Path(tmp) / "pretrained")
            build_stand_ins(Path(tmp) / "pretrained")
        from core import selftest

        print(f"torch {torch.__version__}, {args.threads} thread(s), load average {os.getloadavg()[0]:.1f}\n")
        print("| model | status | wall s | CPU s |\n|---|---|---|---|")
        total_wall = total_cpu = 0.0
        for name in selftest.installed_models():
            wall, cpu = time.perf_counter(), time.process_time()
            (result,) = selftest.run_self_test([name])
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            total_wall, total_cpu = total_wall + wall, total_cpu + cpu
            print(f"| {name} | {result.status} | {wall:.1f} | {cpu:.1f} |", flush=True)
        print(f"| **all** | | **{total_wall:.1f}** | **{total_cpu:.1f}** |")
        print(f"\nload average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
