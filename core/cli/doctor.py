"""``python -m core doctor``: flags for the environment checks; prints the report, exit 1 on a fail."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from core import doctor, selftest
from core.progress import tqdm_progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    parser.add_argument("--verify-checksums", action="store_true",
                        help="also check the sha256 of present pretrained files (reads every file once, then cached)")
    parser.add_argument("--self-test", nargs="*", metavar="MODEL", default=None,
                        help="also run every installed model (or only the MODELs named) on a known input and check "
                        "its output; exit 1 if one fails (models: contentvec, rmvpe, fcpe, nsf_hifigan, "
                        "diffusion_svc_base, uvr_vocals)")
    parser.add_argument("--device", default="cpu", help="device for --self-test (cpu, cuda, auto; default cpu)")


def run_cli(args: argparse.Namespace) -> int:
    checks = doctor.run_doctor(verify_checksums=args.verify_checksums)
    self_test = getattr(args, "self_test", None)
    results = []
    if self_test is not None:
        with tqdm_progress("self-test") as bar:
            results = selftest.run_self_test(self_test or None, bar, device=args.device)
    if args.json:
        out = [{**asdict(c), "detail": c.cli_detail} for c in checks]
        print(json.dumps({"checks": out, "self_test": [asdict(r) for r in results]} if self_test is not None else out,
                         indent=1))  # fmt: skip
    else:
        print(doctor.format_report(checks))
        if self_test is not None:
            print(selftest.format_results(results))
    failed = any(c.status == doctor.FAIL for c in checks) or any(r.failed for r in results)
    return 1 if failed else 0
