"""What several benchmark scripts share: the shared-data folder, full-size stand-in weights, peak memory, the report.

Imported as ``from benchmarks._common import ...`` after the script has put the repository root on ``sys.path``.
Only the standard library at import time: a benchmark's peak RSS must not grow by importing this module.
"""

from __future__ import annotations

import importlib.util
import json
import os
import resource
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
# The shared data and reference folder (the same rule as tests/conftest.py, which benchmarks do not import:
# it would load pytest into the process whose memory is measured).
SHARED = Path(os.environ.get("SVCOVER_SHARED") or ROOT.parent / "shared").resolve()
REFERENCE = SHARED / "reference"

# fairseq's cfg["model"] of the released hubert_base.pt: the layout the content-encoder loader reads.
HUBERT_BASE_MODEL_CFG = {
    "_name": "hubert", "extractor_mode": "default", "encoder_layers": 12, "encoder_embed_dim": 768,
    "encoder_ffn_embed_dim": 3072, "encoder_attention_heads": 12, "conv_bias": False,
    "conv_feature_layers": "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2", "final_dim": 256,
    "layer_norm_first": False, "conv_pos": 128, "conv_pos_groups": 16,
}  # fmt: skip


def weights_builder() -> ModuleType:
    """The shared ``weights_from_schema`` module: deterministic full-size weights from a model's key schema."""
    spec = importlib.util.spec_from_file_location("weights_from_schema", REFERENCE / "weights_from_schema.py")
    assert spec is not None and spec.loader is not None, REFERENCE / "weights_from_schema.py"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_full_size_hubert(path: Path, builder: ModuleType) -> None:
    """A stand-in ``hubert_base.pt``: the released tensor shapes in fairseq's container."""
    import torch

    schema = json.loads((REFERENCE / "hubert" / "schema_hubert_base.json").read_text())["keys"]
    path.parent.mkdir(parents=True, exist_ok=True)
    container = {"args": None, "cfg": {"model": HUBERT_BASE_MODEL_CFG, "task": {"normalize": False}},
                 "model": builder.make_state_dict(schema, 1)}  # fmt: skip
    torch.save(container, path)


def write_full_size_rmvpe(path: Path, builder: ModuleType) -> None:
    """A stand-in ``rmvpe.pt``: the released state dict's shapes."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(builder.make_state_dict(builder.load_schema(str(REFERENCE / "rmvpe" / "schema.json")), 1), path)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def print_report(lines: list[str], out: Path | None) -> None:
    """Print the markdown report and, when ``out`` is given, write it there too."""
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        out.write_text(text, encoding="utf-8")
