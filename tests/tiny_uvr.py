"""A tiny MDX-Net-shaped ONNX "vocal model" and the audio-separator metadata that registers it.

Real MDX-Net vocal models take the STFT of a stereo chunk as ``[batch, 4, dim_f, dim_t]`` (real and
imaginary parts of both channels, the lowest ``dim_f`` bins) and return a tensor of the same layout
holding the vocal spectrum. The stand-in multiplies the input by a fixed frequency mask: bins at or
above ``cutoff_hz`` are "vocals", the rest "instrumental", so tests can check which stem a tone lands in.
It is registered the way audio-separator looks models up: by the MD5 audio-separator computes for
the file, in a local ``mdx_model_data.json``, and by name in a local ``download_checks.json``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

TINY_MODEL = "svcover-tiny-mdx.onnx"
N_FFT = 2048
DIM_F = 1024
DIM_T_SET = 8  # dim_t = 256 frames, as in real MDX-Net vocal models
SAMPLE_RATE = 44100

EMPTY_DOWNLOAD_LISTS = (
    "vr_download_list", "mdx_download_list", "mdx_download_vip_list", "demucs_download_list",
    "mdx23c_download_list", "mdx23c_download_vip_list", "roformer_download_list",
)  # fmt: skip


def build_tiny_mdx(path: Path, cutoff_hz: float = 1000.0, dim_t_set: int = DIM_T_SET) -> Path:
    """Write the mask model to ``path`` (a few kB); its input must have exactly ``2**dim_t_set`` frames."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    freqs = np.arange(DIM_F) * SAMPLE_RATE / N_FFT
    mask = (freqs >= cutoff_hz).astype(np.float32).reshape(1, 1, DIM_F, 1)
    dim_t = 2**dim_t_set
    graph = helper.make_graph(
        [helper.make_node("Mul", ["input", "mask"], ["output"])],
        "tiny_mdx",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 4, DIM_F, dim_t])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 4, DIM_F, dim_t])],
        initializer=[numpy_helper.from_array(mask, "mask")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def audio_separator_md5(path: Path) -> str:
    """Written from audio-separator's documented rule: MD5 of the last 10,240,000 bytes (whole file if smaller)."""
    data = path.read_bytes()
    return hashlib.md5(data[-10000 * 1024 :]).hexdigest()


def install_tiny_uvr(uvr_dir: Path, cutoff_hz: float = 1000.0, name: str = TINY_MODEL, primary: str = "Vocals",
                     dim_t_set: int = DIM_T_SET) -> Path:  # fmt: skip
    """Build the model in ``uvr_dir`` and register it in the metadata files there (created if absent)."""
    model = build_tiny_mdx(uvr_dir / name, cutoff_hz, dim_t_set)
    checks_path = uvr_dir / "download_checks.json"
    checks = json.loads(checks_path.read_text()) if checks_path.exists() else {k: {} for k in EMPTY_DOWNLOAD_LISTS}
    checks["mdx_download_list"][f"MDX-Net Model: svcover tiny {name}"] = name
    checks_path.write_text(json.dumps(checks))
    mdx_path = uvr_dir / "mdx_model_data.json"
    mdx = json.loads(mdx_path.read_text()) if mdx_path.exists() else {}
    mdx[audio_separator_md5(model)] = {
        "compensate": 1.0, "mdx_dim_f_set": DIM_F, "mdx_dim_t_set": dim_t_set,
        "mdx_n_fft_scale_set": N_FFT, "primary_stem": primary,
    }  # fmt: skip
    mdx_path.write_text(json.dumps(mdx))
    vr_path = uvr_dir / "vr_model_data.json"
    if not vr_path.exists():
        vr_path.write_text("{}")
    return model
