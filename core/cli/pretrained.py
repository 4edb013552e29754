"""``python -m core download``: fetch pretrained weights (or any file by URL, verified) and list their status."""

from __future__ import annotations

import argparse
from pathlib import Path

from core import pretrained
from core.errors import SvcoverError
from core.progress import tqdm_progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Without NAME or --all: list every pretrained file and its status. "
        "Mirror: SVCOVER_MIRROR=http://host:port/prefix fetches every registry file from "
        "<prefix>/<original host>/<original path>; SVCOVER_HF_ENDPOINT (or HF_ENDPOINT) replaces "
        "https://huggingface.co only. "
        "Proxy: the standard HTTPS_PROXY / HTTP_PROXY / NO_PROXY variables are honoured."
    )
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"pretrained model(s) to fetch: {', '.join(e.name for e in pretrained.REGISTRY)}; 'uvr' = every uvr_* model")
    parser.add_argument("--all", action="store_true", help="fetch every pretrained model that is missing")
    parser.add_argument("--force", action="store_true", help="download again even if present")
    parser.add_argument("--url", help="download any file (a shared voice model, a mirror copy) from this URL")
    parser.add_argument("--to", metavar="PATH", help="with --url: where to save the file")
    parser.add_argument("--sha256", metavar="HEX", help="with --url: expected sha256; on mismatch nothing is saved")
    parser.add_argument("--timeout", type=float, default=pretrained.DEFAULT_TIMEOUT,
                        help=f"seconds without data before a download counts as stalled (default {pretrained.DEFAULT_TIMEOUT:g})")
    parser.add_argument("--retries", type=int, default=2, help="resume attempts after a dropped connection (default 2)")
    parser.add_argument("--no-verify", action="store_true", help="when listing: skip the sha256 check of present files")


def run_cli(args: argparse.Namespace) -> int:
    if args.url or args.to:
        if not (args.url and args.to):
            raise SvcoverError("--url and --to go together: python -m core download --url URL --to PATH")
        # every argument is checked before a byte is fetched
        pretrained.check_url(args.url)
        pretrained.check_sha256(args.sha256)
        pretrained.check_destination(Path(args.to))
        with tqdm_progress(Path(args.to).name) as bar:
            path = pretrained.download_url(args.url, args.to, args.sha256, None, bar, args.timeout, args.retries)
        print(f"saved {path}" + (" (sha256 verified)" if args.sha256 else ""))
        return 0
    names = [e.name for e in pretrained.REGISTRY] if args.all else pretrained.resolve_names(args.names)
    if not names:
        print(f"pretrained folder: {pretrained.pretrained_root()}")
        for entry, st in zip(pretrained.REGISTRY, pretrained.all_status(verify=not args.no_verify), strict=True):
            print(f"  {entry.name:<20} {st.state:<15} {st.detail}")
        missing = pretrained.missing_report(verify=False)
        if missing:
            print("\nmissing:\n" + missing)
        return 0
    failures = []
    for name in names:
        try:
            with tqdm_progress(name) as bar:
                st = pretrained.install(name, bar, force=args.force, timeout=args.timeout, retries=args.retries)
            print(f"{name}: {st.state} ({st.detail})")
        except SvcoverError as e:
            failures.append(f"{name}: {e}")
            print(f"error: {e}")
    if failures:
        print(f"\n{len(failures)} download(s) failed. What is still missing and where to get it:")
        print(pretrained.missing_report(verify=False))
        return 1
    return 0
