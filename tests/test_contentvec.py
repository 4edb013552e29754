"""Content encoder: fairseq-format HuBERT/ContentVec checkpoints load without fairseq and match the reference.

The full-size stand-in checkpoints (about 190 MB each, laid out like ``hubert_base.pt``) are written
once per session; a shape-reduced HuBERT with the same container covers the error paths quickly.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import CheckpointError, MissingPretrainedError
from core.features.contentvec import ContentVec, align_to_frames, parse_conv_layers
from tests.conftest import REFERENCE
from tests.standins import FAIRSEQ_MODULES, save_with_fairseq_dictionary

HUBERT_REF = REFERENCE / "hubert"
CASES = [("case_1", "schema_hubert_base.json"), ("case_2", "schema_contentvec_legacy.json")]
BASE_CONV = "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2"
SMALL_CONV = "[(32,10,5)] + [(32,3,2)] * 4 + [(32,2,2)] * 2"
ATOL = RTOL = 1e-4  # ../shared/reference/hubert/README.md section 5


# ---------------------------------------------------------------- building fairseq-like files


def _model_cfg(**overrides) -> dict:
    cfg = {
        "_name": "hubert",
        "label_rate": 50.0,
        "extractor_mode": "default",
        "encoder_layers": 12,
        "encoder_embed_dim": 768,
        "encoder_ffn_embed_dim": 3072,
        "encoder_attention_heads": 12,
        "activation_fn": "gelu",
        "layer_type": "transformer",
        "conv_feature_layers": BASE_CONV,
        "conv_bias": False,
        "final_dim": 256,
        "untie_final_proj": True,
        "layer_norm_first": False,
        "conv_pos": 128,
        "conv_pos_groups": 16,
        "required_seq_len_multiple": 2,
        "feature_grad_mult": 0.1,
        "dropout": 0.1,
        "attention_dropout": 0.1,
        "activation_dropout": 0.0,
        "encoder_layerdrop": 0.05,
        "dropout_input": 0.1,
        "dropout_features": 0.1,
        "mask_prob": 0.8,
        "logit_temp": 0.1,
        "target_glu": False,
    }
    cfg.update(overrides)
    return cfg


def write_fairseq_checkpoint(path: Path, state: dict, **model_overrides) -> Path:
    """torch.save a container shaped like fairseq's trainer checkpoint, with a pickled label Dictionary."""
    assert not any(name in sys.modules for name in FAIRSEQ_MODULES)  # the stand-in class never meets fairseq
    symbols = ["<s>", "<pad>", "</s>", "<unk>"] + [str(i) for i in range(500)]
    container = {
        "args": None,
        "cfg": {
            "_name": None,
            "common": {"fp16": True, "seed": 1337},
            "model": _model_cfg(**model_overrides),
            "task": {
                "_name": "hubert_pretraining",
                "data": "/data",
                "labels": ["km"],
                "label_dir": None,
                "label_rate": 50.0,
                "sample_rate": 16000,
                "normalize": False,
                "fine_tuning": False,
                "enable_padding": False,
                "max_sample_size": 250000,
                "min_sample_size": 32000,
                "single_target": False,
                "random_crop": True,
                "pad_audio": False,
            },
            "criterion": {"_name": "hubert", "pred_masked_weight": 1.0},
            "optimizer": {"_name": "adam", "adam_betas": "(0.9,0.98)"},
            "lr_scheduler": {"_name": "polynomial_decay", "warmup_updates": 32000},
            "dataset": {"max_tokens": 1400000},
            "optimization": {"max_update": 400000, "lr": [0.0005]},
            "checkpoint": {"save_dir": "checkpoints"},
            "distributed_training": {"distributed_world_size": 32},
            "bmuf": None,
            "ema": None,
        },
        "model": collections.OrderedDict(state),
        "criterion": None,
        "optimizer_history": [
            {
                "criterion_name": "HubertCriterion",
                "optimizer_name": "FP16Optimizer",
                "lr_scheduler_state": {"best": None},
                "num_updates": 100000,
            }
        ],
        "extra_state": {"metrics": {}, "previous_training_time": 0.0},
    }
    return save_with_fairseq_dictionary(
        path,
        container,
        bos_word="<s>",
        unk_word="<unk>",
        pad_word="<pad>",
        eos_word="</s>",
        symbols=symbols,
        count=[1] * len(symbols),
        indices={s: i for i, s in enumerate(symbols)},
        bos_index=0,
        pad_index=1,
        eos_index=2,
        unk_index=3,
        nspecial=4,
    )


def _schema_state(weights_builder, schema_file: str, seed: int) -> dict:
    return weights_builder.make_state_dict(weights_builder.load_schema(HUBERT_REF / schema_file), seed)


@pytest.fixture(scope="module")
def reference_checkpoints(tmp_path_factory, weights_builder):
    """case name -> (float16 fairseq-like checkpoint built from that case's schema and seed, case arrays).

    Built once for this module and deleted afterwards (about 190 MB each).
    """
    root = tmp_path_factory.mktemp("hubert")
    out = {}
    for case, schema_file in CASES:
        ref = dict(np.load(HUBERT_REF / f"{case}.npz"))
        state = _schema_state(weights_builder, schema_file, int(ref["seed"]))
        fp = weights_builder.fingerprint(state)
        assert abs(fp - float(ref["weights_fingerprint"])) < 1e-6 * fp
        out[case] = (write_fairseq_checkpoint(root / f"{case}_hubert_base.pt", state), ref)
        del state
    yield out
    for path, _ in out.values():
        path.unlink(missing_ok=True)


# A shape-reduced HuBERT (12 layers, 64-d) in fairseq's cfg["model"] names: what the small checkpoints say.
SMALL_CFG = dict(
    conv_feature_layers=SMALL_CONV,
    encoder_layers=12,
    encoder_embed_dim=64,
    encoder_ffn_embed_dim=128,
    encoder_attention_heads=4,
    conv_pos=16,
    conv_pos_groups=4,
    final_dim=16,
)


@pytest.fixture(scope="module")
def small_state() -> dict:
    """Weights of the SMALL_CFG HuBERT with the fairseq key names and fp16 storage."""
    from core.features.hubert import HubertBase, HubertConfig

    torch.manual_seed(0)
    dim, final_dim = SMALL_CFG["encoder_embed_dim"], SMALL_CFG["final_dim"]
    cfg = HubertConfig(parse_conv_layers(SMALL_CFG["conv_feature_layers"]), embed_dim=dim, final_dim=final_dim,
                       ffn_dim=SMALL_CFG["encoder_ffn_embed_dim"], num_layers=SMALL_CFG["encoder_layers"],
                       num_heads=SMALL_CFG["encoder_attention_heads"], pos_conv_kernel=SMALL_CFG["conv_pos"],
                       pos_conv_groups=SMALL_CFG["conv_pos_groups"])  # fmt: skip
    state = {"mask_emb": torch.rand(dim), "label_embs_concat": torch.rand(504, final_dim)}
    state.update(HubertBase(cfg).state_dict())
    return {k: v.half() for k, v in state.items()}


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory, small_state) -> Path:
    return write_fairseq_checkpoint(tmp_path_factory.mktemp("small") / "hubert_base.pt", small_state, **SMALL_CFG)


@pytest.fixture(scope="module")
def small_encoder(small_checkpoint) -> ContentVec:
    return ContentVec.from_checkpoint(small_checkpoint)


# ---------------------------------------------------------------- compatibility proof


def test_fake_checkpoint_needs_the_safe_path(reference_checkpoints) -> None:
    path, _ = reference_checkpoints["case_1"]
    assert 185e6 < path.stat().st_size < 195e6  # the size of the released fp16 file
    # In a fresh interpreter: safe_load registers its inert stand-ins with torch once per process, so a plain
    # torch.load in this (test) process may already accept them.
    code = "import sys, torch; torch.load(sys.argv[1], weights_only=True, map_location='cpu')"
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "fairseq.data.dictionary.Dictionary" in out.stderr, out.stderr[-2000:]


@pytest.mark.parametrize("case", [c for c, _ in CASES])
def test_reference_outputs_reproduced(reference_checkpoints, case: str) -> None:
    path, ref = reference_checkpoints[case]
    enc = ContentVec.from_checkpoint(path, device="cpu")
    assert not [m for m in sys.modules if m == "fairseq" or m.startswith("fairseq.")]
    wav = ref["wav"]
    n = int(ref["num_frames"])
    assert enc.num_frames(len(wav)) == n
    with torch.inference_mode():
        conv = enc.model.feature_extractor(torch.from_numpy(wav)[None])[0].T.numpy()
        projected = enc.model.project_features(torch.from_numpy(wav)[None])[0].numpy()
    np.testing.assert_allclose(conv, ref["conv_features"], atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(projected, ref["projected_features"], atol=ATOL, rtol=RTOL)

    layer12 = enc.extract(wav)  # the default: contentvec768l12
    assert layer12.shape == (n, 768) and layer12.dtype == np.float32
    np.testing.assert_allclose(layer12, ref["layer12"], atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(enc.extract(wav, layer=9), ref["layer9"], atol=ATOL, rtol=RTOL)
    vec256 = enc.extract(wav, layer=9, final_proj=True)
    assert vec256.shape == (n, 256)
    np.testing.assert_allclose(vec256, ref["layer9_final_proj"], atol=ATOL, rtol=RTOL)


def test_float32_checkpoint_and_newer_weight_norm_names(reference_checkpoints, weights_builder, tmp_path) -> None:
    _, ref = reference_checkpoints["case_1"]
    state = _schema_state(weights_builder, "schema_hubert_base.json", int(ref["seed"]))
    state = {k: v.float() for k, v in state.items()}
    # parametrizations.weight.original0/1 is how torch >= 2.1 weight_norm names weight_g/weight_v.
    state["encoder.pos_conv.0.parametrizations.weight.original0"] = state.pop("encoder.pos_conv.0.weight_g")
    state["encoder.pos_conv.0.parametrizations.weight.original1"] = state.pop("encoder.pos_conv.0.weight_v")
    path = write_fairseq_checkpoint(tmp_path / "checkpoint_best_legacy_500.pt", state)
    del state
    try:
        enc = ContentVec.from_checkpoint(path)
    finally:
        path.unlink()  # 380 MB
    np.testing.assert_allclose(enc.extract(ref["wav"]), ref["layer12"], atol=ATOL, rtol=RTOL)


# ---------------------------------------------------------------- pretrained lookup


def test_missing_pretrained_names_file_and_command(tmp_pretrained) -> None:
    with pytest.raises(MissingPretrainedError) as err:
        ContentVec.from_pretrained(device="cpu")
    msg = str(err.value)
    assert str(tmp_pretrained / "content" / "hubert_base.pt") in msg
    assert "python -m core download contentvec" in msg
    assert "\n" not in msg


def test_pretrained_found_under_either_name(tmp_pretrained, small_checkpoint) -> None:
    (tmp_pretrained / "content").mkdir()
    shutil.copy(small_checkpoint, tmp_pretrained / "content" / "checkpoint_best_legacy_500.pt")
    enc = ContentVec.from_pretrained(device="cpu")
    assert enc.source.endswith("checkpoint_best_legacy_500.pt")
    shutil.copy(small_checkpoint, tmp_pretrained / "content" / "hubert_base.pt")
    assert ContentVec.from_pretrained(device="cpu").source.endswith("hubert_base.pt")


# ---------------------------------------------------------------- bad checkpoints


def test_truncated_checkpoint(small_checkpoint, tmp_path) -> None:
    bad = tmp_path / "hubert_base.pt"
    bad.write_bytes(small_checkpoint.read_bytes()[: small_checkpoint.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"hubert_base\.pt: truncated or corrupt"):
        ContentVec.from_checkpoint(bad)


def _payload(marker: str) -> None:  # what a malicious checkpoint would run on load
    Path(marker).write_text("pwned")


class _Malicious:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (_payload, (self.marker,))


def test_malicious_pickle_never_runs(tmp_path, small_state) -> None:
    marker = tmp_path / "payload_ran"
    path = tmp_path / "hubert_base.pt"
    torch.save({"cfg": {"model": _model_cfg(**SMALL_CFG)}, "model": small_state, "extra": _Malicious(marker)}, path)
    with pytest.raises(CheckpointError, match=r"hubert_base\.pt: refused to load.*_payload"):
        ContentVec.from_checkpoint(path)
    assert not marker.exists()


def test_checkpoint_of_another_model(tmp_path, weights_builder) -> None:
    # RMVPE's rmvpe.pt is a bare state dict: no fairseq container at all.
    rmvpe = weights_builder.make_state_dict(weights_builder.load_schema(REFERENCE / "rmvpe" / "schema.json"), 0)
    path = tmp_path / "rmvpe.pt"
    torch.save(rmvpe, path)
    with pytest.raises(CheckpointError, match=r"rmvpe\.pt: not a HuBERT/ContentVec checkpoint \(no fairseq 'model'"):
        ContentVec.from_checkpoint(path)


def test_container_without_cfg_or_with_other_model_type(tmp_path, small_state) -> None:
    path = tmp_path / "a.pt"
    torch.save({"model": small_state}, path)
    with pytest.raises(CheckpointError, match=r"a\.pt: not a HuBERT/ContentVec checkpoint \(no fairseq 'cfg'"):
        ContentVec.from_checkpoint(path)
    torch.save({"cfg": {"model": _model_cfg(_name="wav2vec2", **SMALL_CFG)}, "model": small_state}, path)
    with pytest.raises(CheckpointError, match="fairseq model type 'wav2vec2'"):
        ContentVec.from_checkpoint(path)
    torch.save({"cfg": {"model": _model_cfg(**SMALL_CFG)}, "model": {"decoder.weight": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError, match="not a HuBERT/ContentVec checkpoint"):
        ContentVec.from_checkpoint(path)


def test_old_style_args_namespace_is_read(tmp_path, small_state, small_encoder) -> None:
    # Older fairseq checkpoints keep the hyperparameters in an argparse.Namespace under "args".
    args = argparse.Namespace(arch="hubert", normalize=False, **_model_cfg(**SMALL_CFG))
    path = tmp_path / "old.pt"
    torch.save({"args": args, "cfg": None, "model": small_state}, path)
    wav = 0.1 * np.random.default_rng(6).standard_normal(4000).astype(np.float32)
    np.testing.assert_array_equal(ContentVec.from_checkpoint(path).extract(wav), small_encoder.extract(wav))


def test_missing_tensor_and_wrong_shape(tmp_path, small_state) -> None:
    state = dict(small_state)
    del state["encoder.layers.11.fc2.bias"]
    path = write_fairseq_checkpoint(tmp_path / "missing.pt", state, **SMALL_CFG)
    with pytest.raises(
        CheckpointError, match=r"missing\.pt: .*missing 1 tensors, e\.g\. 'encoder\.layers\.11\.fc2\.bias'"
    ):
        ContentVec.from_checkpoint(path)
    state = dict(small_state)
    state["final_proj.bias"] = torch.zeros(17, dtype=torch.float16)
    path = write_fairseq_checkpoint(tmp_path / "shape.pt", state, **SMALL_CFG)
    with pytest.raises(
        CheckpointError, match=r"shape\.pt: tensor 'final_proj\.bias' has shape \(17,\), expected \(16,\)"
    ):
        ContentVec.from_checkpoint(path)
    # The hyperparameters disagree with the tensors (a 13-layer config for 12 stored layers).
    path = write_fairseq_checkpoint(tmp_path / "layers.pt", small_state, **{**SMALL_CFG, "encoder_layers": 13})
    with pytest.raises(CheckpointError, match=r"layers\.pt: HuBERT weights do not match the model \(missing"):
        ContentVec.from_checkpoint(path)
    # Absurd sizes are caught by the shape check before any memory is allocated for them.
    path = write_fairseq_checkpoint(tmp_path / "huge.pt", small_state, **{**SMALL_CFG, "encoder_ffn_embed_dim": 10**9})
    with pytest.raises(
        CheckpointError, match=r"huge\.pt: tensor 'encoder\.layers\.0\.fc1\.weight' has shape \(128, 64\)"
    ):
        ContentVec.from_checkpoint(path)


def test_hostile_conv_layer_string_is_not_evaluated(tmp_path, small_state) -> None:
    marker = tmp_path / "ran"
    hostile = f"__import__('pathlib').Path({str(marker)!r}).write_text('x')"
    path = write_fairseq_checkpoint(tmp_path / "h.pt", small_state, **{**SMALL_CFG, "conv_feature_layers": hostile})
    with pytest.raises(CheckpointError, match=r"h\.pt: unreadable HuBERT hyperparameters"):
        ContentVec.from_checkpoint(path)
    assert not marker.exists()


def test_parse_conv_layers() -> None:
    layers = parse_conv_layers(BASE_CONV)
    assert layers == ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2
    for bad in ["[(512,10,5)] * 10**9", "[(512, 10)]", "[(512,10,5.0)]", "open('x')", "[]", "[(1,2,3)] - [(1,2,3)]"]:
        with pytest.raises(ValueError):
            parse_conv_layers(bad)


# ---------------------------------------------------------------- bad or unusual input


@pytest.mark.parametrize(
    "n, frames", [(0, 1), (1, 1), (399, 1), (400, 1), (719, 1), (720, 2), (16000, 49), (24000, 74)]
)
def test_frame_count_and_short_input_padding(small_encoder, n: int, frames: int) -> None:
    rng = np.random.default_rng(n)
    out = small_encoder.extract(0.1 * rng.standard_normal(n).astype(np.float32))
    assert out.shape == (frames, 64) == (small_encoder.num_frames(n), small_encoder.feature_dim())
    assert np.isfinite(out).all()


def test_short_input_equals_zero_padded_input(small_encoder) -> None:
    wav = 0.1 * np.random.default_rng(1).standard_normal(250).astype(np.float32)
    np.testing.assert_array_equal(small_encoder.extract(wav), small_encoder.extract(np.pad(wav, (0, 150))))


def test_silent_input_gives_finite_features(small_encoder) -> None:
    out = small_encoder.extract(np.zeros(16000, dtype=np.float32), layer=2, final_proj=True)
    assert out.shape == (49, 16) and np.isfinite(out).all()


def test_nan_and_inf_are_zeroed_with_a_warning(small_encoder) -> None:
    wav = 0.1 * np.random.default_rng(2).standard_normal(8000).astype(np.float32)
    dirty = wav.copy()
    dirty[[10, 500, 4000]] = [np.nan, np.inf, -np.inf]
    with pytest.warns(RuntimeWarning, match="3 NaN/inf samples"):
        out = small_encoder.extract(dirty)
    assert np.isnan(dirty[10])  # the caller's array is left alone
    clean = wav.copy()
    clean[[10, 500, 4000]] = 0.0
    np.testing.assert_array_equal(out, small_encoder.extract(clean))


def test_float64_input_and_argument_checks(small_encoder) -> None:
    wav = 0.1 * np.random.default_rng(3).standard_normal(4000)
    np.testing.assert_allclose(small_encoder.extract(wav), small_encoder.extract(wav.astype(np.float32)), atol=1e-6)
    with pytest.raises(ValueError, match="layer must be between 1 and 12"):
        small_encoder.extract(wav, layer=13)
    with pytest.raises(ValueError, match="layer must be between 1 and 12"):
        small_encoder.extract(wav, layer=0)
    with pytest.raises(ValueError, match="1-D"):
        small_encoder.extract(np.zeros((2, 4000), dtype=np.float32))
    with pytest.raises(ValueError, match="float samples"):
        small_encoder.extract(np.zeros(4000, dtype=np.int16))


def test_layers_differ_and_final_proj_changes_width(small_encoder) -> None:
    wav = 0.1 * np.random.default_rng(4).standard_normal(8000).astype(np.float32)
    a, b = small_encoder.extract(wav, layer=9), small_encoder.extract(wav)
    assert a.shape == b.shape == (24, 64) and not np.allclose(a, b)
    assert small_encoder.extract(wav, layer=9, final_proj=True).shape == (24, 16)


# ---------------------------------------------------------------- alignment to the mel grid


@pytest.mark.parametrize("n_in, n_out", [(5, 5), (5, 10), (499, 862), (74, 128), (100, 37), (1, 9), (751, 1293)])
def test_align_to_frames_matches_torch_nearest(n_in: int, n_out: int) -> None:
    units = np.random.default_rng(n_in).standard_normal((n_in, 6)).astype(np.float32)
    expected = torch.nn.functional.interpolate(torch.from_numpy(units.T)[None], size=n_out, mode="nearest")[0].T
    np.testing.assert_array_equal(align_to_frames(units, n_out), expected.numpy())


def test_align_10_seconds_to_mel_frames(small_encoder) -> None:
    wav16k = 0.1 * np.random.default_rng(5).standard_normal(160000).astype(np.float32)
    units = small_encoder.extract(wav16k)
    n_mel = 441000 // 512 + 1  # Diffusion-SVC: T = len(wav44k) // 512 + 1
    aligned = align_to_frames(units, n_mel)
    assert units.shape[0] == 499 and aligned.shape == (862, 64)
    np.testing.assert_array_equal(aligned[0], units[0])
    np.testing.assert_array_equal(aligned[-1], units[498])  # floor(861 * 499 / 862) = 498
    with pytest.raises(ValueError):
        align_to_frames(units[:0], 10)
    with pytest.raises(ValueError):
        align_to_frames(units, 0)


def test_half_precision_path_keeps_group_norm_in_float32(small_checkpoint) -> None:
    # from_checkpoint(half=True) only halves on CUDA; here the same dtype plumbing runs on CPU.
    enc = ContentVec.from_checkpoint(small_checkpoint)
    wav = 0.1 * np.random.default_rng(7).standard_normal(8000).astype(np.float32)
    full = enc.extract(wav)
    enc.model.half()
    half = enc.extract(wav)
    assert half.dtype == np.float32 and half.shape == full.shape
    np.testing.assert_allclose(half, full, atol=0.1)
    assert np.abs(half - full).max() > 0  # it really ran in float16
