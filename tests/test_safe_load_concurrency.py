"""safe_load under concurrent use: many threads (and other processes) loading every checkpoint format at once.

Before the fix the allow-list lived in torch's process-wide ``safe_globals`` set for the length of one
``with`` block, so a thread leaving its block removed the entries a neighbour was still loading with:
the fairseq-format content encoder was refused as "may contain malicious code" in every round.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import threading
from pathlib import Path

import pytest
import torch

from core.checkpoints import ArgsNamespaceStub, FairseqDictionaryStub, safe_load
from core.errors import CheckpointError
from tests.standins import TouchPayload, write_fairseq_content_encoder, write_small_vocoder, write_voice_checkpoint


@pytest.fixture(scope="module")
def checkpoint_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from omegaconf import OmegaConf
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("ckpts")
    files = {"content": root / "hubert_base.pt", "vocoder": write_small_vocoder(root / "nsf_hifigan") / "model",
             "voice_a": root / "step_100.pt", "voice_b": root / "best.pt", "weights": root / "model.safetensors",
             "lightning": root / "lightning.ckpt"}  # fmt: skip
    write_fairseq_content_encoder(files["content"])
    write_voice_checkpoint(files["voice_a"], 1)
    write_voice_checkpoint(files["voice_b"], 2)
    save_file({"w": torch.ones(3, 3, dtype=torch.float16)}, str(files["weights"]))
    torch.save({"state_dict": {"w": torch.zeros(2)}, "hyper_parameters": OmegaConf.create({"lr": 0.1, "n": [1, 2]})},
               files["lightning"])  # fmt: skip
    return files


def _check(kind: str, obj: dict) -> None:
    """What each file must contain once loaded (proves it was really read, not just not refused)."""
    if kind == "content":
        assert isinstance(obj["args"], ArgsNamespaceStub) and obj["args"].label_rate == 50
        assert isinstance(obj["task_state"]["dictionaries"][0], FairseqDictionaryStub)
        assert obj["cfg"]["model"]["encoder_embed_dim"] == 768
    elif kind == "vocoder":
        assert "conv_pre.weight" in obj["generator"]
    elif kind.startswith("voice"):
        assert obj["stats"]["hist"].tolist() == [0, 1, 2, 3] and obj["counts"]["a"] == 1
    elif kind == "weights":
        assert obj["w"].dtype == torch.float16
    elif kind == "lightning":
        assert obj["hyper_parameters"]["n"][1] == 2


def test_sixteen_threads_load_every_format_while_a_malicious_file_is_refused(
    checkpoint_files: dict[str, Path], tmp_path: Path
) -> None:
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "x": TouchPayload(marker)}, evil)
    jobs = [*checkpoint_files.items(), ("evil", evil)]
    errors: list[str] = []
    refused = 0
    start = threading.Barrier(16)
    lock = threading.Lock()

    def worker(offset: int) -> None:
        nonlocal refused
        start.wait()  # all threads enter safe_load together: the overlap is what used to fail
        for i in range(3 * len(jobs)):  # three rounds over every file, each thread in its own order
            kind, path = jobs[(i + offset) % len(jobs)]
            try:
                obj = safe_load(path)
                if kind == "evil":
                    errors.append("the malicious file loaded")
                else:
                    _check(kind, obj)
            except CheckpointError as e:
                if kind == "evil" and "refused to load" in str(e):
                    with lock:
                        refused += 1
                else:
                    errors.append(f"{kind}: {e}")
            except AssertionError as e:
                errors.append(f"{kind}: wrong content {e}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:5]
    assert refused == 16 * 3
    assert not marker.exists()


def test_processes_and_threads_load_at_once(checkpoint_files: dict[str, Path]) -> None:
    """Two other processes load every file while four threads here do the same (nothing shared on disk)."""
    paths = list(checkpoint_files.values()) * 2
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=ctx) as pool:
        remote = pool.map(safe_load, paths)
        with concurrent.futures.ThreadPoolExecutor(4) as threads:
            local = list(threads.map(safe_load, paths))
        remote = list(remote)
    kinds = list(checkpoint_files) * 2
    for kind, here, there in zip(kinds, local, remote, strict=True):
        _check(kind, here)
        _check(kind, there)
