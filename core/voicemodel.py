"""Shareable voice models: ``model.safetensors`` (fp16 weights) + ``model_card.json``.

A voice model is a folder (or a zip of that folder) holding exactly these two files. The card says
what the weights need at conversion time: sample rate, content encoder and layer, the F0 range of
the training set, steps trained, the vocoder and its checksum, and the svcover version that made
it. No pickle is involved, so sharing a model cannot share code. Foreign ``.pt``/``.pth``/``.ckpt``
files are imported through :func:`core.checkpoints.safe_load` only.

This module knows nothing about the decoder's architecture: it moves state dicts and cards.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import __version__
from core.checkpoint_store import find_checkpoint
from core.checkpoints import safe_load
from core.config import AUDIO
from core.errors import CheckpointError, SvcoverError
from core.experiment import Experiment
from core.features.encoders import ENCODERS
from core.fsutil import atomic_path, atomic_write_text, refuse_output_as_input, remove_stale_temp_files, same_file
from core.pretrained import NSF_HIFIGAN_DIR, cached_sha256, pretrained_root, sha256_file

if TYPE_CHECKING:  # pragma: no cover
    from core.model.decoder import SvcDecoder

WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "model_card.json"
FORMAT = "svcover-voice-model"
FORMAT_VERSION = 1
FOREIGN_SUFFIXES = (".pt", ".pth", ".ckpt")
MAX_ZIP_BYTES = 4 << 30  # refuse zips that would unpack to more than 4 GB (zip bombs)

# Card fields every exported model carries (values may be None when unknown).
CARD_FIELDS = ("sample_rate", "content_encoder", "content_layer", "f0_min", "f0_max", "steps", "vocoder", "vocoder_sha256")


@dataclass
class VoiceModel:
    """Weights and card of an imported voice model."""

    state_dict: dict[str, Any]
    card: dict[str, Any]
    source: Path
    foreign: bool = False


def make_card(**fields: Any) -> dict[str, Any]:
    """A model card with every standard field (missing ones set to None) plus any extra fields."""
    card: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION}
    card.update({k: None for k in CARD_FIELDS})
    card.update(fields)
    card.setdefault("created_by", f"svcover {__version__}")
    card.setdefault("created_at", _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    return card


def export_voice_model(state_dict: dict[str, Any], card: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``out_dir/model.safetensors`` (floating tensors as fp16) and ``out_dir/model_card.json``.

    Both files are written atomically; the card records the weights' sha256 so a damaged or
    swapped weights file is noticed at import. Returns ``out_dir``.
    """
    import torch
    from safetensors.torch import save_file

    out = Path(out_dir)
    tensors: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise SvcoverError(f"{out}: cannot export {key!r}: not a tensor ({type(value).__name__})")
        t = value.detach().cpu()
        tensors[key] = (t.half() if t.is_floating_point() else t).contiguous()
    if not tensors:
        raise SvcoverError(f"{out}: nothing to export (empty state dict)")
    full = make_card(**card)
    with atomic_path(out / WEIGHTS_NAME) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT})
    full["weights_sha256"] = sha256_file(out / WEIGHTS_NAME)
    full["num_tensors"] = len(tensors)
    atomic_write_text(out / CARD_NAME, json.dumps(full, indent=2, sort_keys=True))
    return out


def pack_zip(folder: str | Path, zip_path: str | Path | None = None) -> Path:
    """Zip an exported voice-model folder (the two files, flat) for sharing."""
    folder = Path(folder)
    for name in (WEIGHTS_NAME, CARD_NAME):
        if not (folder / name).is_file():
            raise SvcoverError(f"{folder}: not an exported voice model (missing {name})")
    target = Path(zip_path) if zip_path else folder.with_suffix(".zip")
    refuse_output_as_input(target, [folder / WEIGHTS_NAME, folder / CARD_NAME])
    with atomic_path(target) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in (CARD_NAME, WEIGHTS_NAME):
            zf.write(folder / name, arcname=name)
    return target


def import_voice_model(path: str | Path) -> VoiceModel:
    """Read a voice model: our folder or zip, a bare ``.safetensors``, or a foreign checkpoint.

    Foreign ``.pt``/``.pth``/``.ckpt`` files go through :func:`core.checkpoints.safe_load` (no
    pickled code runs); their card is marked ``foreign`` with whatever settings the file states.
    """
    path = Path(path)
    if not path.exists():
        raise SvcoverError(f"{path}: voice model not found")
    if path.is_dir():
        return _from_bytes((path / WEIGHTS_NAME).read_bytes() if (path / WEIGHTS_NAME).is_file() else None,
                           _read_card_file(path / CARD_NAME), path)
    suffix = path.suffix.lower()
    if suffix == ".zip":
        return _from_zip(path)
    if suffix == ".safetensors":
        card_file = path.with_name(CARD_NAME)
        return _from_bytes(path.read_bytes(), _read_card_file(card_file) if card_file.is_file() else make_card(), path)
    if suffix in FOREIGN_SUFFIXES:
        return _from_foreign(path)
    raise SvcoverError(f"{path}: unsupported voice model file (use a folder, .zip, .safetensors, .pt, .pth or .ckpt)")


def install_voice_model(path: str | Path, name: str, logs: Path | None = None) -> Path:
    """Import ``path`` and store it as ``logs/<name>/export/`` in our format. Returns that folder."""
    exp = Experiment.open(name, logs)  # validates the name: no paths, no traversal
    if same_file(path, exp.export):
        raise SvcoverError(f"{path}: this is already the installed voice model '{name}' (import from another place)")
    refuse_output_as_input(exp.export / WEIGHTS_NAME, [path], "imported model")
    refuse_output_as_input(exp.export / CARD_NAME, [path], "imported model")
    model = import_voice_model(path)
    card = dict(model.card)
    card["imported_from"] = Path(path).name
    return export_voice_model(model.state_dict, card, exp.export)


def _read_card_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SvcoverError(f"{path.parent}: not a voice model (missing {CARD_NAME})")
    return _parse_card(path.read_bytes(), path)


def _parse_card(data: bytes, where: Path) -> dict[str, Any]:
    try:
        card = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise SvcoverError(f"{where}: {CARD_NAME} is not valid JSON ({e})") from None
    if not isinstance(card, dict):
        raise SvcoverError(f"{where}: {CARD_NAME} must hold a JSON object")
    if card.get("format") not in (None, FORMAT):
        raise SvcoverError(f"{where}: {CARD_NAME} is for {card.get('format')!r}, not an svcover voice model")
    if int(card.get("format_version") or 1) > FORMAT_VERSION:
        raise SvcoverError(f"{where}: made by a newer svcover (format {card['format_version']}); update svcover")
    return card


def _from_bytes(weights: bytes | None, card: dict[str, Any], where: Path) -> VoiceModel:
    if weights is None:
        raise SvcoverError(f"{where}: not a voice model (missing {WEIGHTS_NAME})")
    expected = card.get("weights_sha256")
    if expected and hashlib.sha256(weights).hexdigest() != expected:
        raise CheckpointError(f"{where}: {WEIGHTS_NAME} does not match the sha256 in its model card (damaged or swapped)")
    try:
        from safetensors.torch import load

        state = dict(load(weights))
    except Exception as e:  # safetensors raises its own error type for a bad header
        raise CheckpointError(f"{where}: {WEIGHTS_NAME} is not a valid safetensors file ({str(e)[:120]})") from None
    return VoiceModel(state, card, where)


def _from_zip(path: Path) -> VoiceModel:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = {Path(i.filename).name: i for i in zf.infolist() if not i.is_dir()}
            if sum(i.file_size for i in infos.values()) > MAX_ZIP_BYTES:
                raise SvcoverError(f"{path}: refused: unpacks to more than {MAX_ZIP_BYTES >> 30} GB")
            if CARD_NAME not in infos or WEIGHTS_NAME not in infos:
                raise SvcoverError(f"{path}: not an svcover voice model zip (needs {WEIGHTS_NAME} and {CARD_NAME})")
            # Read the two members into memory: nothing is extracted, so no member path can escape.
            card = _parse_card(zf.read(infos[CARD_NAME]), path)
            weights = zf.read(infos[WEIGHTS_NAME])
    except zipfile.BadZipFile as e:
        raise SvcoverError(f"{path}: not a valid zip file ({e})") from None
    return _from_bytes(weights, card, path)


def _from_foreign(path: Path) -> VoiceModel:
    import torch

    ckpt = safe_load(path)
    state = None
    for key in ("model", "state_dict", "generator", "weight", "net_g"):
        inner = ckpt.get(key)
        if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            state = inner
            break
    if state is None and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        state = ckpt
    if state is None:
        raise CheckpointError(f"{path}: no tensor state dict found (keys: {', '.join(map(str, list(ckpt)[:8]))})")
    card = make_card(foreign=True, source_format=path.suffix.lower().lstrip("."))
    for key in ("sr", "sample_rate", "f0", "version", "global_step", "step"):
        value = ckpt.get(key)
        if isinstance(value, (int, float, str, bool)):
            card[f"source_{key}"] = value
    if isinstance(ckpt.get("global_step"), int):
        card["steps"] = ckpt["global_step"]
    return VoiceModel({str(k): v for k, v in state.items()}, card, path, foreign=True)


def card_summary(card: dict[str, Any]) -> str:
    """One line describing a card, for listings."""
    parts = [f"{card.get('sample_rate') or '?'} Hz"]
    if card.get("content_encoder"):
        parts.append(f"{card['content_encoder']} layer {card.get('content_layer') or '?'}")
    if card.get("f0_min") and card.get("f0_max"):
        parts.append(f"F0 {card['f0_min']:.0f}-{card['f0_max']:.0f} Hz")
    if card.get("steps") is not None:
        parts.append(f"{card['steps']} steps")
    if card.get("foreign"):
        parts.append("imported from a foreign checkpoint")
    return ", ".join(parts)


def experiment_card(exp: Experiment, dataset_stats: Mapping[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """The card fields of a voice model trained on ``exp``, read from what its stages wrote.

    ``dataset_stats`` are the statistics of the features the decoder was trained on (checkpoints carry them; default:
    the experiment's ``stats.json``): the F0 range is their 5th-95th percentile of voiced frames
    (``f0_hz_p5``/``f0_hz_p95``), and encoder and F0 method are the ones the features were made with.
    The content layer comes from the ``extract`` section of ``config.json`` (the encoder's registry entry
    when that section is missing or names another encoder). The vocoder is the one installed in
    ``pretrained/``. ``fields`` are added last (steps, checkpoint, model config, ...).
    """
    stats = dict(dataset_stats) if dataset_stats else _read_json(exp.stats)
    extract = _read_json(exp.config).get("extract") or {}
    encoder = stats.get("encoder") or extract.get("encoder")
    layer = extract.get("layer") if extract.get("encoder") == encoder else None
    if layer is None and encoder:
        layer = ENCODERS[encoder].layer if encoder in ENCODERS else None
    card: dict[str, Any] = {
        "name": exp.name,
        "sample_rate": (extract.get("frame_grid") or {}).get("sample_rate") or AUDIO.sample_rate,
        "content_encoder": encoder,
        "content_layer": layer,
        "f0_min": stats.get("f0_hz_p5"),
        "f0_max": stats.get("f0_hz_p95"),
        "f0_method": stats.get("f0_method") or extract.get("f0_method"),
        "vocoder": "nsf_hifigan",
        **_installed_vocoder(),
    }
    card.update(fields)
    return card


def export_decoder(exp: Experiment, decoder: SvcDecoder, **fields: Any) -> Path:
    """Write ``exp.export``: the decoder's parameters and the experiment's card (see :func:`experiment_card`).

    Only parameters are exported: buffers (the diffusion schedule) are recomputed on load, and fp16 would
    blur them. The card also carries the decoder's config and stats, so the decoder can be rebuilt.
    """
    params = {k: v.detach() for k, v in decoder.named_parameters()}
    stats = decoder.stats or None
    card = experiment_card(exp, stats, model_config=dataclasses.asdict(decoder.config), stats=stats, **fields)
    return export_voice_model(params, card, exp.export)


def export_experiment(name: str, logs: Path | None = None, checkpoint: str | Path | None = None) -> Path:
    """Export an experiment's trained decoder to ``logs/<name>/export/``; returns that folder.

    ``checkpoint``: ``best`` (default), ``latest``, a file name in ``checkpoints/`` or a path
    (:func:`core.checkpoint_store.find_checkpoint`). The card is :func:`experiment_card`'s.
    """
    from core.model.decoder import CHECKPOINT_FORMAT, SvcDecoder

    exp = Experiment.open(name, logs)
    if not exp.exists():
        raise SvcoverError(f"{exp.root}: no such experiment")
    path = find_checkpoint(exp, checkpoint or "best", allow_export=False)
    refuse_output_as_input(exp.export / WEIGHTS_NAME, [path], "export")
    remove_stale_temp_files(exp.export)
    ckpt = safe_load(path)
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a checkpoint written by 'python -m core train'; nothing to export")
    decoder = SvcDecoder.from_checkpoint(path)
    return export_decoder(exp, decoder, decoder_format=CHECKPOINT_FORMAT, steps=ckpt.get("step"),
                          val_loss=ckpt.get("val_loss"), best_val_loss=ckpt.get("best_val_loss"),
                          base=(ckpt.get("train_config") or {}).get("base"), checkpoint=path.name)  # fmt: skip


def _installed_vocoder() -> dict[str, Any]:
    """Name and sha256 of the vocoder in pretrained/ (the one conversions will use), if installed."""
    for name in ("model", "model.ckpt"):
        path = pretrained_root() / NSF_HIFIGAN_DIR / name
        if path.is_file():
            return {"vocoder": f"nsf_hifigan/{name}", "vocoder_sha256": cached_sha256(path)}
    return {}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


__all__ = [
    "CARD_NAME", "WEIGHTS_NAME", "VoiceModel", "card_summary", "export_voice_model", "import_voice_model",
    "export_decoder", "export_experiment", "experiment_card", "install_voice_model", "make_card", "pack_zip",
]
