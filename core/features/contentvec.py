"""Content encoder: ContentVec / HuBERT-base units from fairseq checkpoints, without fairseq.

Reads RVC's ``hubert_base.pt`` and ContentVec's ``checkpoint_best_legacy_500.pt`` (the same model)
through :func:`core.checkpoints.safe_load`, so no pickled code runs. The network itself is
:mod:`core.features.hubert`; this module turns a checkpoint into it, checks the file really is
a HuBERT model, and extracts features:

* default ``layer=12``: output of the last transformer layer, 768-d ("contentvec768l12",
  RVC v2, so-vits-svc 4.1, Diffusion-SVC);
* ``layer=9, final_proj=True``: 256-d ("vec256l9", RVC v1).

Input is 16 kHz mono; output has 50 frames/s (frame ``t`` covers samples ``[320t, 320t + 400)``).
:func:`align_to_frames` puts units on the 44.1 kHz / hop 512 mel grid the way Diffusion-SVC does.

    from core.features.contentvec import ContentVec
    enc = ContentVec.from_checkpoint(path, device="cpu")
    units = enc.extract(wav16k)                    # [frames, 768]
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core import pretrained
from core.checkpoints import key_mismatch, safe_load
from core.device import pick_device
from core.errors import CheckpointError

if TYPE_CHECKING:
    from core.features.hubert import HubertBase, HubertConfig

SAMPLE_RATE = 16000
DEFAULT_LAYER = 12
DOWNLOAD_NAME = "contentvec"

# Tensors that only pretraining uses; present in the released files and ignored here.
TRAINING_ONLY_KEYS = ("mask_emb", "label_embs_concat")
# Keys whose presence says "this is a HuBERT-style network" (checked before anything else).
_SIGNATURE_KEYS = ("feature_extractor.conv_layers.0.0.weight", "encoder.layers.0.self_attn.k_proj.weight")


@dataclass
class ContentVec:
    """A loaded content encoder. Build it with :meth:`from_checkpoint` or :meth:`from_pretrained`."""

    model: HubertBase = field(repr=False)
    device: str
    source: str  # the checkpoint it came from, for messages

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", half: bool = False) -> ContentVec:
        """Load a fairseq-format HuBERT/ContentVec checkpoint.

        Parameters: ``path`` of ``hubert_base.pt`` / ``checkpoint_best_legacy_500.pt`` (float16 or
        float32 tensors); ``device`` "cpu", "cuda[:N]", "mps" or "auto"; ``half`` runs the network
        in float16 (CUDA only; CPU always runs float32).
        Raises :class:`CheckpointError` (one line naming the file) for a missing, truncated, unsafe
        or foreign file, or one whose tensors do not match its own hyperparameters.
        """
        import torch

        from core.features.hubert import HubertBase

        path = Path(path)
        device = pick_device(device)  # before the slow part, so a bad --device fails at once
        checkpoint = safe_load(path)
        cfg, state = _read_checkpoint(checkpoint, path)
        # Built on the meta device: no memory or random init until the checked tensors are assigned,
        # so absurd hyperparameters in a bad file cannot allocate anything.
        with torch.device("meta"):
            model = HubertBase(cfg)
        _load_weights(model, state, path)
        dtype = torch.float16 if half and device.startswith("cuda") else torch.float32
        model.to(device=device, dtype=dtype).eval()
        return cls(model=model, device=device, source=str(path))

    @classmethod
    def from_pretrained(cls, device: str = "auto", half: bool = False) -> ContentVec:
        """Load ``pretrained/content/hubert_base.pt`` (or ``checkpoint_best_legacy_500.pt``).

        Raises :class:`core.errors.MissingPretrainedError` naming the file and the download command.
        """
        path = pretrained.require(
            pretrained.CONTENT_ENCODER, pretrained.CONTENT_ENCODER_ALT, download_name=DOWNLOAD_NAME
        )
        return cls.from_checkpoint(path, device=device, half=half)

    @property
    def num_layers(self) -> int:
        return self.model.cfg.num_layers

    @property
    def hop(self) -> int:
        """Input samples per output frame (320 at 16 kHz = 50 frames/s)."""
        return self.model.cfg.hop

    @property
    def receptive_field(self) -> int:
        """Input samples one frame sees (400); shorter inputs are zero-padded to this length."""
        return self.model.cfg.receptive_field

    def feature_dim(self, final_proj: bool = False) -> int:
        return self.model.cfg.final_dim if final_proj else self.model.cfg.embed_dim

    def num_frames(self, num_samples: int) -> int:
        """Frames :meth:`extract` returns for ``num_samples`` samples: ``(n - 400) // 320 + 1``, at least 1."""
        return max(1, self.model.cfg.num_frames(num_samples))

    def extract(self, wav16k: np.ndarray, layer: int = DEFAULT_LAYER, final_proj: bool = False) -> np.ndarray:
        """Content features of a 16 kHz mono waveform: ``[frames, 768]`` (or 256 with ``final_proj``), float32.

        ``layer`` is 1-based like fairseq's ``output_layer`` (12 = last layer). Inputs shorter than
        the receptive field (400 samples, 25 ms) are zero-padded at the end so one frame comes out.
        NaN/inf samples are replaced by 0 with a ``RuntimeWarning``. Memory and time grow with the
        length (attention with its square): feed chunks of up to about a minute.
        """
        import torch

        if not 1 <= int(layer) <= self.num_layers:
            raise ValueError(f"layer must be between 1 and {self.num_layers}, got {layer}")
        wav = np.asarray(wav16k)
        if wav.ndim != 1:
            raise ValueError(f"extract() expects a 1-D 16 kHz mono waveform, got shape {wav.shape}")
        if not np.issubdtype(wav.dtype, np.floating):
            raise ValueError(f"extract() expects float samples in [-1, 1], got dtype {wav.dtype}")
        wav = wav.astype(np.float32)  # always a copy: the caller's array is never modified
        bad = ~np.isfinite(wav)
        if bad.any():
            warnings.warn(
                f"content encoder input has {int(bad.sum())} NaN/inf samples; they were replaced by 0",
                RuntimeWarning,
                stacklevel=2,
            )
            wav[bad] = 0.0
        if wav.shape[0] < self.receptive_field:
            wav = np.pad(wav, (0, self.receptive_field - wav.shape[0]))
        dtype = next(self.model.parameters()).dtype
        with torch.inference_mode():
            x = torch.from_numpy(wav).to(device=self.device, dtype=dtype).unsqueeze(0)
            out = self.model(x, output_layer=int(layer), final_proj=final_proj)
        return out[0].float().cpu().numpy()


def align_to_frames(units: np.ndarray, n_frames: int) -> np.ndarray:
    """Resample ``units`` [n, D] to ``n_frames`` rows by nearest neighbour: ``[n_frames, D]``.

    Same indices as ``torch.nn.functional.interpolate(mode="nearest")``, which Diffusion-SVC
    (``units_forced_mode: nearest``) uses: row ``i`` takes unit ``floor(i * n / n_frames)``
    (computed in float32). For the mel grid, ``n_frames = len(wav44k) // 512 + 1``.
    """
    units = np.asarray(units)
    if units.ndim != 2 or units.shape[0] == 0:
        raise ValueError(f"align_to_frames() needs units of shape [n >= 1, dim], got {units.shape}")
    if n_frames < 1:
        raise ValueError(f"align_to_frames() needs n_frames >= 1, got {n_frames}")
    n_in = units.shape[0]
    if n_frames == n_in:
        return units.copy()
    scale = np.float32(n_in) / np.float32(n_frames)
    index = np.floor(np.arange(n_frames, dtype=np.float32) * scale).astype(np.int64)
    return units[np.minimum(index, n_in - 1)]


def parse_conv_layers(spec: Any) -> tuple[tuple[int, int, int], ...]:
    """fairseq's ``conv_feature_layers`` string (a Python list expression) -> ((channels, kernel, stride), ...).

    Evaluated with a tiny interpreter over :mod:`ast` that knows only list/tuple literals of ints,
    ``+`` and ``*``, so a hostile string can never run code. Raises ``ValueError`` otherwise.
    """
    if isinstance(spec, (list, tuple)):
        value: Any = spec
    else:
        value = _literal(ast.parse(str(spec), mode="eval").body)
    layers = []
    for item in value if isinstance(value, (list, tuple)) else ():
        if not (isinstance(item, (list, tuple)) and len(item) == 3 and all(isinstance(v, int) and v > 0 for v in item)):
            raise ValueError(f"bad conv layer {item!r} in conv_feature_layers {spec!r}")
        layers.append((int(item[0]), int(item[1]), int(item[2])))
    if not layers:
        raise ValueError(f"empty or invalid conv_feature_layers {spec!r}")
    return tuple(layers)


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.List):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_literal(e) for e in node.elts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
        left, right = _literal(node.left), _literal(node.right)
        if isinstance(node.op, ast.Add) and isinstance(left, list) and isinstance(right, list):
            return left + right
        if isinstance(node.op, ast.Mult) and isinstance(left, list) and isinstance(right, int) and 0 <= right <= 64:
            return left * right
    raise ValueError(f"unsupported expression {ast.dump(node)[:80]}")


def _read_checkpoint(checkpoint: dict, path: Path) -> tuple[HubertConfig, dict]:
    """Split a fairseq container into (network config, state dict), refusing anything that is not HuBERT."""
    from core.features.hubert import HubertConfig

    def refuse(why: str) -> CheckpointError:
        return CheckpointError(f"{path}: not a HuBERT/ContentVec checkpoint ({why})")

    state = checkpoint.get("model")
    if not isinstance(state, Mapping):
        keys = ", ".join(repr(k) for k in list(checkpoint)[:4]) + (", ..." if len(checkpoint) > 4 else "")
        raise refuse(f"no fairseq 'model' state dict; top-level keys {keys}")
    missing_sig = [k for k in _SIGNATURE_KEYS if k not in state]
    if missing_sig:
        raise refuse(f"its state dict has no {missing_sig[0]!r}")

    model_cfg, task_cfg = _hyperparameters(checkpoint)
    if model_cfg is None:
        raise refuse("no fairseq 'cfg' or 'args' with the model hyperparameters")
    name = model_cfg.get("_name", model_cfg.get("arch"))
    if name not in (None, "hubert"):
        raise refuse(f"fairseq model type {name!r}, expected 'hubert'")
    if model_cfg.get("extractor_mode", "default") != "default" or model_cfg.get("layer_norm_first", False):
        raise CheckpointError(
            f"{path}: unsupported HuBERT variant (extractor_mode {model_cfg.get('extractor_mode')!r}, "
            f"layer_norm_first {model_cfg.get('layer_norm_first')!r}); only HuBERT-base / ContentVec-500 models work"
        )
    final = state.get("final_proj.weight")
    try:
        cfg = HubertConfig(
            conv_layers=parse_conv_layers(
                model_cfg.get("conv_feature_layers", "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2")
            ),
            conv_bias=bool(model_cfg.get("conv_bias", False)),
            embed_dim=int(model_cfg.get("encoder_embed_dim", 768)),
            ffn_dim=int(model_cfg.get("encoder_ffn_embed_dim", 3072)),
            num_layers=int(model_cfg.get("encoder_layers", 12)),
            num_heads=int(model_cfg.get("encoder_attention_heads", 12)),
            pos_conv_kernel=int(model_cfg.get("conv_pos", 128)),
            pos_conv_groups=int(model_cfg.get("conv_pos_groups", 16)),
            # final_dim x number of label sets when untied; the tensor itself says how many.
            final_dim=int(final.shape[0]) if hasattr(final, "shape") else int(model_cfg.get("final_dim", 256)),
            normalize_input=bool((task_cfg or {}).get("normalize", False)),
        )
    except (ValueError, TypeError, SyntaxError) as e:
        raise CheckpointError(f"{path}: unreadable HuBERT hyperparameters ({e})") from None
    if cfg.embed_dim % cfg.num_heads or cfg.embed_dim % cfg.pos_conv_groups or cfg.num_layers < 1:
        raise CheckpointError(f"{path}: inconsistent HuBERT hyperparameters {cfg}")
    return cfg, dict(state)


def _hyperparameters(checkpoint: dict) -> tuple[dict | None, dict | None]:
    """(model, task) hyperparameter dicts from ``cfg`` (fairseq >= 0.10) or an old ``args`` Namespace."""
    cfg = checkpoint.get("cfg")
    if isinstance(cfg, Mapping) and isinstance(cfg.get("model"), Mapping):
        task = cfg.get("task")
        return dict(cfg["model"]), dict(task) if isinstance(task, Mapping) else None
    args = checkpoint.get("args")
    if args is not None and hasattr(args, "__dict__"):
        values = dict(vars(args))  # old checkpoints keep model and task settings in one Namespace
        return values, values
    return None, None


def _load_weights(model: HubertBase, state: dict, path: Path) -> None:
    """Check ``state`` against ``model``'s keys and shapes, then assign it as float32; one-line errors."""
    import torch

    state = {k: v for k, v in state.items() if k not in TRAINING_ONLY_KEYS}
    # Newer torch weight norm stores the same two tensors under parametrization names.
    renames = {
        "encoder.pos_conv.0.parametrizations.weight.original0": "encoder.pos_conv.0.weight_g",
        "encoder.pos_conv.0.parametrizations.weight.original1": "encoder.pos_conv.0.weight_v",
    }
    state = {renames.get(k, k): v for k, v in state.items()}
    expected = model.state_dict()
    mismatch = key_mismatch(expected, state, "missing {n} tensors, e.g. {key!r}", "{n} unknown tensors, e.g. {key!r}")
    if mismatch:
        raise CheckpointError(f"{path}: HuBERT weights do not match the model ({mismatch})")
    for key, ref in expected.items():
        value = state[key]
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise CheckpointError(f"{path}: tensor {key!r} is {type(value).__name__}, not a float tensor")
        if tuple(value.shape) != tuple(ref.shape):
            raise CheckpointError(f"{path}: tensor {key!r} has shape {tuple(value.shape)}, expected {tuple(ref.shape)}")
    model.load_state_dict({k: v.float().contiguous() for k, v in state.items()}, strict=True, assign=True)
