"""Safe loading: malicious pickles never run, truncated/foreign files give one clear line."""

from __future__ import annotations

import argparse
import collections
import pickle
import sys
from pathlib import Path

import pytest
import torch

from core.checkpoints import (
    ArgsNamespaceStub,
    FairseqDictionaryStub,
    expect_keys,
    referenced_globals,
    safe_load,
    save_checkpoint,
)
from core.errors import CheckpointError
from tests.standins import TouchPayload, save_with_fairseq_dictionary


class _EvalPayload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import builtins

        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').write('x')",))


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_malicious_raw_pickle_is_refused(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "PWNED"
    path = tmp_path / "voice.pth"
    with open(path, "wb") as fh:
        pickle.dump({"weight": {}, "x": TouchPayload(marker)}, fh, protocol=protocol)
    with pytest.raises(CheckpointError, match=r"refused to load.*system.*malicious") as err:
        safe_load(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize("payload", [TouchPayload, _EvalPayload])
def test_malicious_torch_zip_is_refused(tmp_path: Path, payload: type) -> None:
    marker = tmp_path / "PWNED"
    path = tmp_path / "model.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "hook": payload(marker)}, path)
    with pytest.raises(CheckpointError, match="refused to load"):
        safe_load(path)
    assert not marker.exists()


def test_malicious_legacy_torch_file_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    path = tmp_path / "old.ckpt"
    torch.save({"w": torch.zeros(2), "hook": TouchPayload(marker)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="refused to load"):
        safe_load(path)
    assert not marker.exists()


def test_good_checkpoints_round_trip(tmp_path: Path) -> None:
    import numpy as np
    from omegaconf import OmegaConf

    path = tmp_path / "ok.pt"
    obj = {
        "model": collections.OrderedDict(w=torch.arange(4.0).half()),
        "args": argparse.Namespace(lr=1e-4),
        "cfg": OmegaConf.create({"data": {"sr": 44100}}),
        "stats": {"loss": np.float64(0.5), "hist": np.arange(3)},
        "global_step": 7,
    }
    save_checkpoint(path, obj)
    got = safe_load(path)
    assert torch.equal(got["model"]["w"], obj["model"]["w"]) and got["model"]["w"].dtype == torch.float16
    assert isinstance(got["args"], ArgsNamespaceStub) and vars(got["args"]) == {"lr": 1e-4}
    assert got["cfg"]["data"]["sr"] == 44100 and got["global_step"] == 7
    assert float(got["stats"]["loss"]) == 0.5 and list(got["stats"]["hist"]) == [0, 1, 2]
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(3)}, legacy, _use_new_zipfile_serialization=False)
    assert torch.equal(safe_load(legacy)["w"], torch.ones(3))


def test_safetensors_are_loaded_without_pickle(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "m.safetensors"
    save_file({"a": torch.ones(2)}, str(path))
    assert torch.equal(safe_load(path)["a"], torch.ones(2))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        safe_load(bad)


def test_truncated_files_give_clear_errors(tmp_path: Path) -> None:
    full = tmp_path / "full.pt"
    torch.save({"w": torch.zeros(1000)}, full)
    data = full.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated") as err:
        safe_load(cut)
    assert str(cut) in str(err.value)
    raw = tmp_path / "cut.pkl"
    raw.write_bytes(pickle.dumps({"a": list(range(500))}, protocol=2)[:300])
    with pytest.raises(CheckpointError, match="truncated"):
        safe_load(raw)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        safe_load(empty)
    with pytest.raises(CheckpointError, match="not found"):
        safe_load(tmp_path / "nope.pt")


@pytest.mark.parametrize("content", [b"hello world, not a model", b'{"json": true}', b"PK\x03\x04garbage"])
def test_non_checkpoint_files_give_clear_errors(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        safe_load(path)
    msg = str(err.value)
    assert msg.startswith(str(path)) and "\n" not in msg and len(msg) < 300


def test_non_dict_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(CheckpointError, match="expected a dict"):
        safe_load(path)


def test_fairseq_like_checkpoint_loads_with_stub(tmp_path: Path) -> None:
    """A HuBERT/ContentVec-style file pickling fairseq.data.dictionary.Dictionary, built without fairseq."""
    symbols = ["<s>", "<pad>", "</s>", "<unk>", *map(str, range(500))]
    path = save_with_fairseq_dictionary(
        tmp_path / "hubert_like.pt",
        {"args": None, "cfg": {"model": {"_name": "hubert"}},
         "model": collections.OrderedDict(mask_emb=torch.zeros(768, dtype=torch.float16))},
        symbols=symbols, count=[1] * len(symbols), indices={s: i for i, s in enumerate(symbols)},
        bos_index=0, pad_index=1, eos_index=2, unk_index=3, nspecial=4,
    )  # fmt: skip
    assert "fairseq" not in sys.modules
    # The fixture is faithful: the pickle names fairseq's class (plain weights_only would refuse it; that can no
    # longer be shown in-process, since safe_load registers its allow-list with torch for the whole process).
    assert "fairseq.data.dictionary.Dictionary" in referenced_globals(path)
    got = safe_load(path)
    stub = got["task_state"]["dictionaries"][0]
    assert isinstance(stub, FairseqDictionaryStub) and stub.symbols[4] == "0" and len(stub.symbols) == 504
    assert got["cfg"]["model"]["_name"] == "hubert" and got["model"]["mask_emb"].shape == (768,)
    assert not any(name.startswith("fairseq") for name in sys.modules)


def test_expect_keys_names_the_wrong_model(tmp_path: Path) -> None:
    sd = {"unet.encoder.weight": torch.zeros(1), "cnn.weight": torch.zeros(1)}
    expect_keys(sd, ["unet.", "cnn."], tmp_path / "rmvpe.pt", "RMVPE")
    with pytest.raises(CheckpointError, match=r"this is not a NSF-HiFiGAN checkpoint \(missing keys conv_pre\.\*"):
        expect_keys(sd, ["conv_pre.", "ups."], tmp_path / "x.pt", "NSF-HiFiGAN")
    with pytest.raises(CheckpointError, match="no state dict"):
        expect_keys(None, ["a"], tmp_path / "x.pt", "X")  # type: ignore[arg-type]
