"""Retrieval index over the training set's content features (faiss), and the blend used at conversion.

At conversion each input frame's content vector is replaced, by a fraction ``rate``, with the
inverse-square-distance weighted mean of its ``k`` nearest training vectors. Pulling the units towards
the training speaker's own is RVC's remedy for timbre leaking from the source singer; here it feeds a
diffusion decoder instead of a GAN.

Files: ``logs/<exp>/index/units.index`` (faiss), ``units.npy`` (the vectors, float16), ``index.json``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.config import load_json, save_json
from core.errors import NothingToDoError, Remedy, SvcoverError
from core.experiment import Experiment
from core.features.store import list_feature_chunks, load_features, load_stats
from core.fsutil import atomic_path, remove_stale_temp_files, same_file
from core.progress import ProgressFn, report

log = logging.getLogger(__name__)

EXACT_LIMIT = 50_000  # up to this many vectors an exact (flat) search is fast enough
MAX_VECTORS = 400_000  # larger sets are subsampled (about 80 min of audio at 86 frames/s)
DEFAULT_K = 8
INDEX_FILE, VECTORS_FILE, META_FILE = "units.index", "units.npy", "index.json"


class RetrievalIndexError(SvcoverError):
    """The retrieval index is missing or does not match the model."""


@dataclass
class RetrievalIndex:
    index: Any  # faiss.Index
    vectors: np.ndarray  # [N, C] float32
    meta: dict[str, Any]

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def blend(self, units: np.ndarray, rate: float, k: int = DEFAULT_K) -> np.ndarray:
        """``(1 - rate) * units + rate * weighted mean of the k nearest training vectors`` per frame."""
        units = np.ascontiguousarray(units, dtype=np.float32)
        if rate <= 0 or units.size == 0:
            return units
        if units.shape[1] != self.dim:
            raise RetrievalIndexError(
                f"retrieval index holds {self.dim}-d features but the input has {units.shape[1]}-d",
                remedy=Remedy("index", str(self.meta.get("experiment", "NAME"))),
            )
        k = max(1, min(k, len(self.vectors)))
        dist, idx = self.index.search(units, k)
        idx = np.where(idx < 0, 0, idx)
        weights = 1.0 / np.maximum(dist, 1e-6) ** 2  # faiss returns squared L2 distances for flat/IVF-flat
        weights /= weights.sum(axis=1, keepdims=True)
        retrieved = np.einsum("tk,tkc->tc", weights.astype(np.float32), self.vectors[idx])
        rate = float(min(1.0, rate))
        return ((1.0 - rate) * units + rate * retrieved).astype(np.float32)


def make_faiss_index(vectors: np.ndarray, seed: int = 0) -> tuple[Any, str]:
    """Exact search for small sets, IVF-Flat (trained k-means lists) for large ones."""
    import faiss

    n, dim = vectors.shape
    if n <= EXACT_LIMIT:
        index = faiss.IndexFlatL2(dim)
        index.add(vectors)
        return index, "flat"
    nlist = int(min(4 * np.sqrt(n), n // 39))
    quantizer = faiss.IndexFlatL2(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist)
    rng = np.random.default_rng(seed)
    train = vectors[rng.choice(n, size=min(n, nlist * 64), replace=False)]
    index.train(train)
    index.add(vectors)
    index.nprobe = max(1, nlist // 8)
    return index, f"ivf{nlist}"


def build_index(exp_name: str, progress: ProgressFn | None = None, seed: int = 0) -> Path:
    """Index the content features of every extracted chunk of ``exp_name``; returns the index folder."""
    import faiss

    exp = Experiment.open(exp_name)
    if not exp.exists():
        raise RetrievalIndexError(f"{exp.root}: no such experiment")
    if same_file(exp.index, exp.features) or same_file(exp.index, exp.root):
        raise RetrievalIndexError(f"{exp.index}: the index folder is the features folder it is built from; remove that link")
    chunks = list_feature_chunks(exp)
    if not chunks:
        raise NothingToDoError(f"{exp.root}: no extracted features", remedy=Remedy("extract", exp.name))
    parts = []
    for i, chunk in enumerate(chunks):
        parts.append(load_features(exp, chunk)["units"])
        report(progress, 0.5 * (i + 1) / len(chunks), f"reading features {i + 1}/{len(chunks)}")
    vectors = np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
    vectors = vectors[np.isfinite(vectors).all(axis=1)]
    if len(vectors) > MAX_VECTORS:
        keep = np.sort(np.random.default_rng(seed).choice(len(vectors), MAX_VECTORS, replace=False))
        vectors = vectors[keep]
    report(progress, 0.6, f"indexing {len(vectors)} vectors")
    index, kind = make_faiss_index(vectors, seed)
    out = exp.index
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(out)
    with atomic_path(out / VECTORS_FILE) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, vectors.astype(np.float16))
    with atomic_path(out / INDEX_FILE) as tmp:
        faiss.write_index(index, str(tmp))
    stats = load_stats(exp) if exp.stats.is_file() else {}
    save_json(out / META_FILE, {
        "experiment": exp.name, "vectors": int(len(vectors)), "dim": int(vectors.shape[1]), "kind": kind,
        "encoder": stats.get("encoder"), "chunks": len(chunks),
    })  # fmt: skip
    report(progress, 1.0, f"index of {len(vectors)} frames ({kind})")
    return out


def load_index(exp: Experiment | str) -> RetrievalIndex:
    import faiss

    exp = exp if isinstance(exp, Experiment) else Experiment.open(exp)
    folder = exp.index
    paths = [folder / INDEX_FILE, folder / VECTORS_FILE, folder / META_FILE]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise RetrievalIndexError(f"{missing[0]}: retrieval index not built", remedy=Remedy("index", exp.name))
    try:
        index = faiss.read_index(str(paths[0]))
        vectors = np.load(paths[1], allow_pickle=False).astype(np.float32)
    except (RuntimeError, ValueError, OSError) as e:
        raise RetrievalIndexError(f"{folder}: unreadable retrieval index ({str(e).splitlines()[0][:120]}); rebuild it") from None
    if index.ntotal != len(vectors) or index.d != vectors.shape[1]:
        raise RetrievalIndexError(f"{folder}: index and vectors disagree", remedy=Remedy("index", exp.name))
    return RetrievalIndex(index=index, vectors=vectors, meta=load_json(paths[2]))
