"""safe_load under 16 concurrent threads: genuine files refused, and wall time, for two ways of handing torch the
allow-list.

* ``per-call``: what ``safe_load`` did before (a ``torch.serialization.safe_globals`` block around each load; the
  block edits one process-wide set, so one thread leaving it removes the entries another thread is loading with);
* ``registered``: what it does now (``core.checkpoints.safe_load``: the list registered once for the process).

Each mode runs in its own process (once registered, the list stays for the life of the process).
Usage: ``python benchmarks/safe_load_concurrency.py [--rounds 3] [--repeat 2]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _files(root: Path) -> list[Path]:
    import torch
    from omegaconf import OmegaConf

    from tests.standins import write_fairseq_content_encoder, write_small_vocoder, write_voice_checkpoint

    files = [root / "hubert_base.pt", write_small_vocoder(root / "vocoder") / "model", root / "step_1.pt",
             root / "step_2.pt", root / "lightning.ckpt"]  # fmt: skip
    write_fairseq_content_encoder(files[0])
    write_voice_checkpoint(files[2], 1)
    write_voice_checkpoint(files[3], 2)
    torch.save({"state_dict": {"w": torch.zeros(2)}, "hp": OmegaConf.create({"lr": 0.1})}, files[4])
    return files


def _per_call_load(path: Path) -> dict:
    """The former loader: pre-scan, then torch.load inside a safe_globals block."""
    import torch

    from core.checkpoints import _allowed_globals, _allowed_names, _is_allowed, referenced_globals
    from core.errors import CheckpointError

    allowed = _allowed_names()
    for name in referenced_globals(path):
        if not _is_allowed(name, allowed):
            raise CheckpointError(f"{path}: refused {name}")
    with torch.serialization.safe_globals(_allowed_globals()):
        return torch.load(str(path), map_location="cpu", weights_only=True)


def run_mode(mode: str, rounds: int, threads: int = 16) -> None:
    from core.checkpoints import safe_load

    load = safe_load if mode == "registered" else _per_call_load
    files = _files(Path(tempfile.mkdtemp(prefix="svcover-race-")))
    refused = total = 0
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def worker(offset: int) -> None:
        nonlocal refused, total
        barrier.wait()
        for i in range(rounds * len(files)):
            try:
                load(files[(i + offset) % len(files)])
                ok = True
            except Exception:
                ok = False
            with lock:
                total += 1
                refused += not ok

    start = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    print(f"{mode}: {refused} of {total} genuine loads refused, {time.perf_counter() - start:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--mode", choices=("per-call", "registered"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        run_mode(args.mode, args.rounds)
        return
    for _ in range(args.repeat):
        for mode in ("per-call", "registered"):  # side by side, alternating
            subprocess.run([sys.executable, __file__, "--mode", mode, "--rounds", str(args.rounds)], check=True)


if __name__ == "__main__":
    main()
