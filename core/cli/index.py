"""``python -m core index``: builds the retrieval index of an experiment and prints its size.

core.index imports faiss only when the stage runs, so ``--help`` does not load it.
"""

from __future__ import annotations

import argparse

from core.config import load_json
from core.index import META_FILE, build_index
from core.progress import tqdm_progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exp", required=True, help="experiment whose extracted content features are indexed")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subsampling and IVF training")


def run_cli(args: argparse.Namespace) -> int:
    with tqdm_progress("index") as bar:
        folder = build_index(args.exp, progress=bar, seed=args.seed)
    meta = load_json(folder / META_FILE)
    print(f"retrieval index: {meta['vectors']} frames of {meta['dim']}-d features ({meta['kind']}) in {folder}")
    return 0
