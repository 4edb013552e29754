"""Start the svcover web UI: ``python app.py [--host 127.0.0.1] [--port 7860]``.

Binds 127.0.0.1 unless told otherwise. Heavy ML modules load lazily when a stage runs, so the
page is served within seconds.
"""

from __future__ import annotations

import argparse
import os
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="svcover web UI")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this computer only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--listen", action="store_true", help="bind 0.0.0.0 so other machines on the network can connect")
    p.add_argument("--share", action="store_true", help="create a public gradio.live link (anyone with it can use your GPU)")
    p.add_argument("--auth", default=None, metavar="USER:PASS", help="require this login (strongly advised with --listen/--share)")
    p.add_argument("--inbrowser", action="store_true", help="open the browser once the server is up")
    p.add_argument("--allow-server-paths", action="store_true",
                   help="with --listen/--share: still let visitors name folders on this computer (dataset folder box)")
    return p.parse_args(argv)


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def security_warning(host: str, share: bool, auth: tuple[str, str] | None) -> str | None:
    """The loud warning printed when the UI is reachable from other machines without a password."""
    if auth is not None or (not share and host in LOCAL_HOSTS):
        return None
    where = "through a public gradio.live link" if share else f"from other machines on the network ({host})"
    bar = "!" * 78
    return (
        f"{bar}\nWARNING: the svcover UI is reachable {where} WITHOUT a password.\n"
        "Anyone who can reach it can upload files and run jobs on this computer's GPU.\n"
        "Restart with --auth user:pass (or drop --listen/--share).\n"
        f"{bar}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    host = "0.0.0.0" if args.listen else args.host
    auth = None
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not sep or not user or not password:
            print("error: --auth must look like user:password", file=sys.stderr)
            return 2
        auth = (user, password)
    warning = security_warning(host, args.share, auth)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    from core.experiment import logs_root
    from core.jobs.store import JOBS_FOLDER
    from core.pretrained import pretrained_root
    from webui import security

    remote = args.share or host not in LOCAL_HOSTS
    if remote and not args.allow_server_paths:
        os.environ[security.SERVER_PATHS_ENV] = "0"  # read by the tabs when they are built
    uploads = security.configure_upload_folder(logs_root())  # before gradio is imported
    if uploads is not None:
        security.start_upload_cleaner(uploads, security.upload_max_age_seconds())

    from starlette.middleware import Middleware

    from webui.app import build_app

    demo = build_app()
    demo.queue(default_concurrency_limit=1)
    demo.launch(
        server_name=host,
        server_port=args.port,
        share=args.share,
        auth=auth,
        inbrowser=args.inbrowser,
        # Only these folders (plus Gradio's own upload temp folder) can be read through the file route.
        allowed_paths=[str(logs_root()), str(pretrained_root())],
        # Both list absolute paths of this machine: the checksum cache, and the job records (a job's request
        # names its input files as given); the tabs read job records server-side, never through the route.
        blocked_paths=[str(pretrained_root() / ".sha256-cache.json"), str(logs_root() / JOBS_FOLDER)],
        max_file_size="4gb",
        show_error=True,
        app_kwargs={"middleware": [Middleware(security.LoginRateLimiter)]},  # backoff after wrong passwords
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
