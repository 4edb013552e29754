"""The read side of the feature store: what training, the index, conversion and the UI read after extract.

The contract (docs/extract.md): :func:`list_feature_chunks` names the chunks that have every feature group,
:func:`load_features` returns one chunk's arrays on one frame grid, :func:`load_stats` the dataset
statistics. The files are found under the settings of the last extract run (``config.json`` →
``"extract"``) unless a config is given. Where files live and how their names encode the settings is
defined once, in :mod:`core.features.extract` (the writer): this module only reads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.config import load_json
from core.errors import Remedy, SvcoverError
from core.experiment import Experiment, visible_files
from core.features.extract import GROUP_ARRAYS, GROUPS, ExtractConfig, as_experiment, find_group_file, group_digests

# config.json path -> (mtime_ns, settings): a training data loader calls load_features per chunk.
_SETTINGS_CACHE: dict[Path, tuple[tuple[int, int, int], ExtractConfig]] = {}


def _settings_of(exp: Experiment, config: ExtractConfig | None = None) -> ExtractConfig:
    """``config`` (validated), or else the settings of the last extract run of ``exp`` (``config.json``)."""
    if config is not None:
        return config.validate()
    try:
        st = exp.config.stat()
    except FileNotFoundError:
        raise SvcoverError(f"{exp.config}: no extract settings", remedy=Remedy("extract", exp.name)) from None
    cached = _SETTINGS_CACHE.get(exp.config)
    stamp = (st.st_mtime_ns, st.st_ino, st.st_size)  # atomic rewrites give a new inode as well
    if cached is not None and cached[0] == stamp:
        return cached[1]
    section = load_json(exp.config).get("extract")
    if not isinstance(section, dict):
        raise SvcoverError(f"{exp.config}: no \"extract\" section", remedy=Remedy("extract", exp.name))
    defaults = ExtractConfig()
    settings = ExtractConfig(f0_method=section.get("f0_method", defaults.f0_method),
                             encoder=section.get("encoder", defaults.encoder))  # fmt: skip
    _SETTINGS_CACHE[exp.config] = (stamp, settings)
    return settings


def list_feature_chunks(exp: str | Experiment, *, config: ExtractConfig | None = None) -> list[str]:
    """Chunks (wav stems) that have all four feature groups for the current (or given) settings."""
    exp = as_experiment(exp)
    if not exp.features.is_dir() or not exp.config.is_file():
        return []
    try:
        digests = group_digests(_settings_of(exp, config))
    except SvcoverError:
        return []
    names = []
    for wav in visible_files(exp.gt_wavs, "*.wav"):
        if all(find_group_file(exp, wav.stem, g, digests[g]) is not None for g in GROUPS):
            names.append(wav.stem)
    return names


def load_features(exp: str | Experiment, chunk: str, *, config: ExtractConfig | None = None) -> dict[str, np.ndarray]:
    """All features of one chunk on one frame grid of ``T = n_samples // 512 + 1`` frames.

    Keys: ``units`` [T, C] float32, ``f0`` [T] Hz (0 = unvoiced), ``f0_continuous`` [T] Hz,
    ``volume`` [T] (Diffusion-SVC linear RMS), ``loudness_db`` [T], ``mel`` [128, T] natural-log mel.
    Settings default to the last extract run's (``config.json`` → ``extract``).
    """
    exp = as_experiment(exp)
    digests = group_digests(_settings_of(exp, config))
    out: dict[str, np.ndarray] = {}
    for group in GROUPS:
        path = find_group_file(exp, chunk, group, digests[group])
        if path is None:
            raise SvcoverError(
                f"{exp.features / chunk}: no {group} features for chunk {chunk!r}", remedy=Remedy("extract", exp.name)
            )
        try:
            with np.load(path, allow_pickle=False) as data:
                for key in GROUP_ARRAYS[group]:
                    out[key] = np.asarray(data[key], dtype=np.float32)
        except (OSError, ValueError, KeyError) as e:
            raise SvcoverError(f"{path}: unreadable feature file ({e}); delete it and re-run extract") from None
    t = out["mel"].shape[1]
    lengths = {k: (v.shape[1] if k == "mel" else v.shape[0]) for k, v in out.items()}
    if any(n != t for n in lengths.values()):
        raise SvcoverError(f"{exp.features / chunk}: features disagree on the frame count {lengths}; re-run extract")
    return out


def load_stats(exp: str | Experiment) -> dict:
    """The dataset statistics written by the last extract run (``stats.json``)."""
    exp = as_experiment(exp)
    if not exp.stats.is_file():
        raise SvcoverError(f"{exp.stats}: not found", remedy=Remedy("extract", exp.name))
    return load_json(exp.stats)
