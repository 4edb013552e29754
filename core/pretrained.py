"""Pretrained weights: where they live, where they come from, and a verified, resumable downloader.

Files live in ``pretrained/`` or ``$SVCOVER_PRETRAINED`` at fixed relative paths (the names the
publishers use). :data:`REGISTRY` records, for every file the app uses, its download URLs, sha256,
size, licence and whether those facts were checked against the publisher's page.

Downloads are resumable (HTTP ``Range`` on a ``.part`` file kept beside the target), verified with
sha256 *before* the file is renamed into place, honour ``HTTP(S)_PROXY``/``NO_PROXY`` (requests'
``trust_env``) and rewrite Hugging Face URLs to ``$SVCOVER_HF_ENDPOINT`` / ``$HF_ENDPOINT`` when set
(a mirror). CLI: ``python -m core download [NAME...|--all]`` and
``python -m core download --url URL [--sha256 HEX] --to PATH``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from core.errors import MissingPretrainedError, SvcoverError
from core.experiment import PROJECT_ROOT
from core.progress import ProgressFn, report

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

CONTENT_ENCODER = "content/hubert_base.pt"
CONTENT_ENCODER_ALT = "content/checkpoint_best_legacy_500.pt"
RMVPE = "rmvpe/rmvpe.pt"
NSF_HIFIGAN_DIR = "nsf_hifigan"
DIFFUSION_SVC_BASE = "diffusion_svc/model_0.pt"
UVR_DIR = "uvr"
UVR_VOCALS_MODEL = "UVR-MDX-NET-Voc_FT.onnx"

CHUNK = 1 << 20
NET_CHUNK = 64 << 10  # small network reads: a dropped connection loses at most this much
DEFAULT_TIMEOUT = 30.0  # seconds without a byte before a download is called stalled
HF_HOST = "https://huggingface.co"
USER_AGENT = "svcover-downloader"


class DownloadError(SvcoverError):
    """A download that failed (network, HTTP status, checksum); nothing was installed."""


# --------------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class RemoteFile:
    """One object to fetch. ``dest`` is a file path, or for an archive the folder it unpacks into."""

    dest: str
    urls: tuple[str, ...]
    sha256: str | None = None
    size: int | None = None
    archive: str | None = None  # None | "zip" | "7z"
    anchor: str | None = None  # archives: a file name marking the folder whose files go into dest


@dataclass(frozen=True)
class Pretrained:
    """A pretrained model as the user sees it: one CLI name, one or more files on disk."""

    name: str
    title: str
    files: tuple[RemoteFile, ...]
    # Paths that must exist for the model to count as present; a tuple inside means "any one of".
    required: tuple[str | tuple[str, ...], ...]
    licence: str
    verified: bool  # sha256/size/URL confirmed against the publisher's page
    notes: str = ""
    used_by: str = ""
    aliases: tuple[str, ...] = field(default=())
    optional: bool = False  # only some features need it; the doctor does not warn when it is missing

    def main_path(self) -> str:
        first = self.required[0]
        return first if isinstance(first, str) else first[0]


REGISTRY: tuple[Pretrained, ...] = (
    Pretrained(
        name="contentvec",
        title="ContentVec-500 (HuBERT-base) content encoder, as distributed with RVC",
        files=(
            RemoteFile(
                dest=CONTENT_ENCODER,
                urls=(f"{HF_HOST}/lj1995/VoiceConversionWebUI/resolve/main/hubert_base.pt",),
                sha256="f54b40fd2802423a5643779c4861af1e9ee9c1564dc9d32f54f20b5ffba7db96",
                size=189_507_909,
            ),
        ),
        required=((CONTENT_ENCODER, CONTENT_ENCODER_ALT),),
        licence="MIT (lj1995/VoiceConversionWebUI model repository; ContentVec code and weights are MIT)",
        verified=False,
        notes="sha256 and size as quoted for the Hugging Face LFS object by several independent projects; "
        "not re-checked against the hub page from here. ContentVec's own checkpoint_best_legacy_500.pt "
        "(same tensors, different bytes) is accepted at content/checkpoint_best_legacy_500.pt.",
        used_by="Extract, Convert",
        aliases=("content", "hubert", "hubert_base"),
    ),
    Pretrained(
        name="rmvpe",
        title="RMVPE pitch estimator",
        files=(
            RemoteFile(
                dest=RMVPE,
                urls=(f"{HF_HOST}/lj1995/VoiceConversionWebUI/resolve/main/rmvpe.pt",),
                sha256="6d62215f4306e3ca278246188607209f09af3dc77ed4232efdd069798c4ec193",
                size=181_184_272,
            ),
        ),
        required=(RMVPE,),
        licence="MIT (lj1995/VoiceConversionWebUI model repository)",
        verified=False,
        notes="sha256 and size as quoted for the Hugging Face LFS object by several independent projects; "
        "not re-checked against the hub page from here. yxlllc/RMVPE also publishes it as rmvpe.zip.",
        used_by="Extract, Convert",
    ),
    Pretrained(
        name="nsf_hifigan",
        title="openvpi NSF-HiFiGAN 44.1 kHz vocoder (hop 512, 128 mel bins)",
        files=(
            RemoteFile(
                dest=NSF_HIFIGAN_DIR,
                urls=(
                    "https://github.com/openvpi/vocoders/releases/download/nsf-hifigan-44.1k-hop512-128bin-2024.02/"
                    "nsf_hifigan_44.1k_hop512_128bin_2024.02.zip",
                    "https://github.com/openvpi/vocoders/releases/download/nsf-hifigan-v1/nsf_hifigan_20221211.zip",
                ),
                archive="zip",
                anchor="config.json",
            ),
        ),
        required=(f"{NSF_HIFIGAN_DIR}/config.json", (f"{NSF_HIFIGAN_DIR}/model", f"{NSF_HIFIGAN_DIR}/model.ckpt")),
        licence="CC BY-NC-SA 4.0 (openvpi community vocoder release; non-commercial)",
        verified=False,
        notes="zip archive holding one folder with the weights (model or model.ckpt) and config.json; "
        "the publisher states no sha256, so only the archive's integrity is checked.",
        used_by="Convert",
        aliases=("vocoder", "nsf-hifigan"),
    ),
    Pretrained(
        name="diffusion_svc_base",
        title="Diffusion-SVC pretrained decoder base (contentvec768l12, 512 x 20)",
        files=(
            RemoteFile(
                dest="diffusion_svc",
                urls=(f"{HF_HOST}/ChiTu/Diffusion-SVC/resolve/main/v0.1/contentvec768l12.7z",),
                archive="7z",
                anchor="config.yaml",
            ),
        ),
        required=(DIFFUSION_SVC_BASE, "diffusion_svc/config.yaml"),
        licence="MIT code (CNChTu/Diffusion-SVC); weights trained on VCTK (CC BY 4.0) and M4Singer "
        "(non-commercial research licence)",
        verified=False,
        notes="7z archive (URL from the Diffusion-SVC README's pretrained table; no sha256 stated). "
        "Unpacked with a 7z/7za/7zr program when one is on PATH; otherwise open it with 7-Zip and put "
        "model_0.pt and config.yaml into pretrained/diffusion_svc/.",
        used_by="Train (fine-tuning)",
        aliases=("diffusion_svc", "base"),
    ),
    Pretrained(
        name="uvr_vocals",
        title="UVR MDX-Net vocal separation model + audio-separator metadata",
        files=(
            RemoteFile(
                dest=f"{UVR_DIR}/{UVR_VOCALS_MODEL}",
                urls=(f"https://github.com/TRvlvr/model_repo/releases/download/all_public_uvr_models/{UVR_VOCALS_MODEL}",),
            ),
            RemoteFile(
                dest=f"{UVR_DIR}/download_checks.json",
                urls=("https://raw.githubusercontent.com/TRvlvr/application_data/main/filelists/download_checks.json",),
            ),
            RemoteFile(
                dest=f"{UVR_DIR}/mdx_model_data.json",
                urls=("https://raw.githubusercontent.com/TRvlvr/application_data/main/mdx_model_data/model_data_new.json",),
            ),
            RemoteFile(
                dest=f"{UVR_DIR}/vr_model_data.json",
                urls=("https://raw.githubusercontent.com/TRvlvr/application_data/main/vr_model_data/model_data_new.json",),
            ),
        ),
        required=(f"{UVR_DIR}/{UVR_VOCALS_MODEL}", f"{UVR_DIR}/mdx_model_data.json"),
        licence="MIT (Ultimate Vocal Remover model repository)",
        verified=False,
        notes="URLs follow audio-separator's download locations; the metadata JSON files change upstream, "
        "so no checksums are pinned.",
        used_by="Cover (separation)",
        aliases=("separation",),
    ),
    Pretrained(
        name="uvr_karaoke",
        title="UVR MDX-Net karaoke model (lead vocal vs. backing vocals)",
        files=(
            RemoteFile(
                dest=f"{UVR_DIR}/UVR_MDXNET_KARA_2.onnx",
                urls=("https://github.com/TRvlvr/model_repo/releases/download/all_public_uvr_models/UVR_MDXNET_KARA_2.onnx",),
            ),
        ),
        required=(f"{UVR_DIR}/UVR_MDXNET_KARA_2.onnx",),
        licence="MIT (Ultimate Vocal Remover model repository)",
        verified=False,
        notes="Same release as uvr_vocals; no checksum published.",
        used_by="Cover (optional: remove backing vocals)",
        optional=True,
    ),
    Pretrained(
        name="uvr_dereverb",
        title="UVR MDX-Net de-reverb model (FoxJoy)",
        files=(
            RemoteFile(
                dest=f"{UVR_DIR}/Reverb_HQ_By_FoxJoy.onnx",
                urls=("https://github.com/TRvlvr/model_repo/releases/download/all_public_uvr_models/Reverb_HQ_By_FoxJoy.onnx",),
            ),
        ),
        required=(f"{UVR_DIR}/Reverb_HQ_By_FoxJoy.onnx",),
        licence="MIT (Ultimate Vocal Remover model repository)",
        verified=False,
        notes="Same release as uvr_vocals; no checksum published.",
        used_by="Cover (optional: remove reverb)",
        optional=True,
    ),
)

# Names that fetch several entries at once (messages elsewhere say `python -m core download uvr`).
GROUPS: dict[str, tuple[str, ...]] = {"uvr": ("uvr_vocals", "uvr_karaoke", "uvr_dereverb")}


def pretrained_root() -> Path:
    """``$SVCOVER_PRETRAINED`` if set, else ``<project>/pretrained``."""
    return Path(os.environ.get("SVCOVER_PRETRAINED") or PROJECT_ROOT / "pretrained").resolve()


def get(name: str) -> Pretrained:
    """The registry entry called ``name`` (or one of its aliases)."""
    for entry in REGISTRY:
        if name == entry.name or name in entry.aliases:
            return entry
    known = ", ".join(e.name for e in REGISTRY)
    raise SvcoverError(f"unknown pretrained model {name!r}: choose from {known}")


def resolve_names(names: list[str]) -> list[str]:
    """Registry names for CLI/UI arguments: groups expanded, aliases mapped, duplicates dropped."""
    out: list[str] = []
    for name in names:
        for item in GROUPS.get(name, (name,)):
            resolved = get(item).name
            if resolved not in out:
                out.append(resolved)
    return out


def entry_for_path(relative: str) -> Pretrained | None:
    """The registry entry that provides the relative path ``relative`` (or None)."""
    for entry in REGISTRY:
        for req in entry.required:
            if relative in ((req,) if isinstance(req, str) else req):
                return entry
        if any(relative == f.dest or relative.startswith(f.dest.rstrip("/") + "/") for f in entry.files):
            return entry
    return None


def require(relative: str, *alternatives: str, download_name: str | None = None) -> Path:
    """Path of a pretrained file (first of ``relative`` and ``alternatives`` that exists).

    Raises :class:`MissingPretrainedError` naming the expected path and the fetch command.
    """
    root = pretrained_root()
    for rel in (relative, *alternatives):
        candidate = root / rel
        if candidate.exists():
            return candidate
    entry = entry_for_path(relative)
    name = download_name or (entry.name if entry else relative.split("/")[0])
    source = f" (source: {entry.files[0].urls[0]})" if entry and entry.files[0].urls else ""
    raise MissingPretrainedError(
        f"missing pretrained file {root / relative}: fetch it with 'python -m core download {name}' "
        f"or copy it there by hand{source}"
    )


# --------------------------------------------------------------------------------------------- status


@dataclass(frozen=True)
class Status:
    name: str
    state: str  # "ok" | "present" (no checksum published) | "missing" | "incomplete" | "wrong checksum"
    detail: str

    @property
    def usable(self) -> bool:
        return self.state in ("ok", "present")


def _present(root: Path, req: str | tuple[str, ...]) -> Path | None:
    for rel in (req,) if isinstance(req, str) else req:
        if (root / rel).exists():
            return root / rel
    return None


def status(entry: Pretrained, verify: bool = True) -> Status:
    """Whether ``entry`` is on disk; with ``verify`` its pinned checksums are checked (cached by size/mtime)."""
    root = pretrained_root()
    found = [_present(root, req) for req in entry.required]
    missing = [req if isinstance(req, str) else " or ".join(req) for req, p in zip(entry.required, found, strict=True) if p is None]
    if len(missing) == len(entry.required):
        return Status(entry.name, "missing", f"missing {', '.join(missing)}")
    if missing:
        return Status(entry.name, "incomplete", f"missing {', '.join(missing)}")
    pinned = [f for f in entry.files if f.sha256 and not f.archive and (root / f.dest).is_file()]
    if verify:
        for f in pinned:
            digest = cached_sha256(root / f.dest)
            if digest != f.sha256:
                return Status(entry.name, "wrong checksum", f"{f.dest}: sha256 {digest[:12]}… expected {f.sha256[:12]}…")
        if pinned:
            return Status(entry.name, "ok", "present, sha256 verified")
    return Status(entry.name, "present", "present" + ("" if verify else " (checksum not checked)"))


def all_status(verify: bool = True) -> list[Status]:
    return [status(e, verify=verify) for e in REGISTRY]


def missing_report(verify: bool = False) -> str:
    """Exactly which files are missing, where they go and where to get them (for offline users)."""
    root = pretrained_root()
    lines = []
    for entry, st in zip(REGISTRY, all_status(verify=verify), strict=True):
        if st.usable or (entry.optional and st.state == "missing"):
            continue
        lines.append(f"- {entry.name} ({entry.title}): {st.detail}")
        for f in entry.files:
            kind = f" ({f.archive} archive: unpack into {root / f.dest})" if f.archive else f" -> {root / f.dest}"
            lines.append(f"    get {f.urls[0]}{kind}")
        lines.append(f"    or run: python -m core download {entry.name}")
    return "\n".join(lines)


_CACHE_NAME = ".sha256-cache.json"


def cached_sha256(path: Path) -> str:
    """sha256 of ``path``, remembered (by size and mtime) in a dot-file of the pretrained root."""
    cache = _load_cache()
    st = path.stat()
    key = str(path.resolve())
    hit = cache.get(key)
    if hit and hit.get("size") == st.st_size and hit.get("mtime_ns") == st.st_mtime_ns:
        return hit["sha256"]
    digest = sha256_file(path)
    cache[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
    _store_cache(cache)
    return digest


def _load_cache() -> dict:
    try:
        return json.loads((pretrained_root() / _CACHE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _store_cache(cache: dict) -> None:
    from core.fsutil import atomic_write_text

    with contextlib.suppress(OSError):
        atomic_write_text(pretrained_root() / _CACHE_NAME, json.dumps(cache, indent=1))


def _remember_sha256(path: Path, digest: str) -> None:
    """Record a just-verified download so status checks need not read the file again."""
    root = pretrained_root()
    if not path.resolve().is_relative_to(root) or not root.is_dir():
        return
    st = path.stat()
    cache = _load_cache()
    cache[str(path.resolve())] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
    _store_cache(cache)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------- download


def mirror_url(url: str) -> str:
    """Rewrite a huggingface.co URL to ``$SVCOVER_HF_ENDPOINT`` (else ``$HF_ENDPOINT``) when set."""
    endpoint = (os.environ.get("SVCOVER_HF_ENDPOINT") or os.environ.get("HF_ENDPOINT") or "").rstrip("/")
    if endpoint and url.startswith(HF_HOST + "/"):
        return endpoint + url[len(HF_HOST):]
    return url


def make_session() -> requests.Session:
    """A requests session that keeps ``trust_env`` on: HTTP(S)_PROXY, NO_PROXY and netrc apply."""
    import requests

    session = requests.Session()
    session.trust_env = True
    session.headers["User-Agent"] = USER_AGENT
    return session


def part_path(dest: Path) -> Path:
    """The partial download beside ``dest``; a dot-file so folder listings never show it."""
    return dest.with_name(f".{dest.name}.part")


def download_url(
    url: str,
    dest: str | Path,
    sha256: str | None = None,
    size: int | None = None,
    progress: ProgressFn | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = 2,
    session: requests.Session | None = None,
) -> Path:
    """Download ``url`` to ``dest``: resumable, verified, then renamed into place.

    The bytes go to a ``.part`` file beside ``dest``; an interrupted download is resumed with an
    HTTP ``Range`` request (by the retries here or by the next call). Only when the size and the
    sha256 (if given) match is the file renamed to ``dest``; a mismatch deletes the partial file and
    raises :class:`DownloadError`, so nothing is ever installed at ``dest`` from a bad body.
    """
    import requests

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    url = mirror_url(url)
    session = session or make_session()
    part = part_path(dest)
    resumed_from = part.stat().st_size if part.exists() else 0
    attempt = 0
    while True:
        try:
            _fetch_into(session, url, part, size, progress, timeout)
            break
        except requests.exceptions.HTTPError as e:
            code = e.response.status_code if e.response is not None else "?"
            raise DownloadError(f"{url}: HTTP {code}; nothing was saved to {dest}") from None
        except (requests.exceptions.Timeout, requests.exceptions.ConnectionError,
                requests.exceptions.ChunkedEncodingError, _ShortBody) as e:
            attempt += 1
            kept = part.stat().st_size if part.exists() else 0
            if attempt > retries:
                kind = "timed out (no data)" if isinstance(e, requests.exceptions.Timeout) else "connection failed"
                resume = f"; {kept} bytes kept, run again to resume" if kept else ""
                raise DownloadError(f"{url}: {kind} while downloading {dest.name}{resume}") from None
            log.info("download of %s interrupted (%s); resuming at byte %d", dest.name, type(e).__name__, kept)
    got_size = part.stat().st_size
    if size is not None and got_size != size:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{url}: got {got_size} bytes, expected {size}; nothing was installed at {dest}")
    if sha256:
        digest = sha256_file(part)
        if digest.lower() != sha256.lower():
            part.unlink(missing_ok=True)
            if resumed_from:  # a stale .part from an older file version: start over once from byte 0
                log.info("resumed download of %s failed verification; downloading it again from the start", dest.name)
                return download_url(url, dest, sha256, size, progress, timeout, retries, session)
            raise DownloadError(
                f"{url}: sha256 mismatch (got {digest}, expected {sha256.lower()}); nothing was installed at {dest}"
            )
    os.replace(part, dest)
    if sha256:
        _remember_sha256(dest, sha256.lower())
    report(progress, 1.0, f"{dest.name} done")
    return dest


class _ShortBody(Exception):
    """The server closed the connection before Content-Length bytes arrived."""


def _fetch_into(session: requests.Session, url: str, part: Path, size: int | None,
                progress: ProgressFn | None, timeout: float) -> None:
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have == size:
        return  # a previous run got every byte; only verification is left
    headers = {"Range": f"bytes={have}-"} if have else {}
    with session.get(url, stream=True, timeout=(timeout, timeout), headers=headers, allow_redirects=True) as resp:
        if resp.status_code == 416 and have:  # range beyond the end: the part file is already complete
            return
        resp.raise_for_status()
        if have and resp.status_code != 206:  # server ignored Range: start over
            have = 0
        mode = "ab" if have else "wb"
        length = resp.headers.get("Content-Length")
        total = size or (have + int(length) if length and length.isdigit() else None)
        expected_end = have + int(length) if length and length.isdigit() else None
        done = have
        with open(part, mode) as fh:
            for block in resp.iter_content(NET_CHUNK):
                fh.write(block)
                done += len(block)
                if total:
                    report(progress, done / total, f"{part.name[1:-5]} {done / 1e6:.1f}/{total / 1e6:.1f} MB")
        if expected_end is not None and done < expected_end:
            raise _ShortBody()


def install(name: str, progress: ProgressFn | None = None, force: bool = False,
            timeout: float = DEFAULT_TIMEOUT, retries: int = 2) -> Status:
    """Download and install the registry entry ``name`` (skipped when already present and valid)."""
    entry = get(name)
    current = status(entry)
    if current.usable and not force:
        report(progress, 1.0, f"{entry.name}: already installed")
        return current
    root = pretrained_root()
    n = len(entry.files)
    for i, remote in enumerate(entry.files):
        sub = _sub_progress(progress, i / n, (i + 1) / n)
        target = root / remote.dest
        if not remote.archive and target.is_file() and not force and (
            not remote.sha256 or cached_sha256(target) == remote.sha256
        ):
            continue
        _install_remote(entry, remote, root, sub, timeout, retries)
    final = status(entry)
    if not final.usable:
        raise DownloadError(f"{entry.name}: downloaded, but {final.detail} under {root}")
    return final


def _sub_progress(progress: ProgressFn | None, start: float, end: float) -> ProgressFn | None:
    if progress is None:
        return None
    from core.progress import scaled

    return scaled(progress, start, end)


def _install_remote(entry: Pretrained, remote: RemoteFile, root: Path, progress: ProgressFn | None,
                    timeout: float, retries: int) -> None:
    errors = []
    for url in remote.urls:
        if remote.archive:
            archive = root / ".downloads" / PurePosixPath(url.split("?")[0]).name
        else:
            archive = root / remote.dest
        try:
            download_url(url, archive, remote.sha256, remote.size, progress, timeout, retries)
        except DownloadError as e:
            errors.append(str(e))
            continue
        if remote.archive:
            extract_archive(archive, root / remote.dest, remote.archive, remote.anchor)
            archive.unlink(missing_ok=True)
        return
    hint = f"offline? download {remote.urls[0]} by hand and put it at {root / remote.dest}"
    if remote.archive:
        hint = f"offline? download {remote.urls[0]} by hand and unpack it into {root / remote.dest}"
    raise DownloadError(f"{entry.name}: {errors[-1]} ({hint})")


def _safe_members(names: list[str], archive: Path) -> None:
    for name in names:
        p = PurePosixPath(name.replace("\\", "/"))
        if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
            raise DownloadError(f"{archive}: refused to unpack: member {name!r} would land outside the folder")


def extract_archive(archive: Path, dest_dir: Path, kind: str, anchor: str | None = None) -> Path:
    """Unpack ``archive`` into ``dest_dir`` (zip always; 7z through a 7z program on PATH).

    The files of the folder that holds ``anchor`` (e.g. ``config.json``) are moved into ``dest_dir``,
    so an archive with one top-level folder lands flat. Members escaping the folder are refused.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".tmp-unpack-", dir=dest_dir.parent) as tmp_name:
        tmp = Path(tmp_name)
        if kind == "zip":
            try:
                with zipfile.ZipFile(archive) as zf:
                    _safe_members(zf.namelist(), archive)
                    zf.extractall(tmp)
            except zipfile.BadZipFile as e:
                raise DownloadError(f"{archive}: not a valid zip archive ({e})") from None
        elif kind == "7z":
            exe = next((shutil.which(x) for x in ("7z", "7za", "7zr") if shutil.which(x)), None)
            if exe is None:
                raise DownloadError(
                    f"{archive}: is a 7z archive and no 7z program was found; open it with 7-Zip "
                    f"(7-zip.org) and put its files into {dest_dir}"
                )
            listing = subprocess.run([exe, "l", "-slt", str(archive)], capture_output=True, text=True)
            _safe_members([ln[7:] for ln in listing.stdout.splitlines() if ln.startswith("Path = ")][1:], archive)
            res = subprocess.run([exe, "x", "-y", f"-o{tmp}", str(archive)], capture_output=True, text=True)
            if res.returncode != 0:
                raise DownloadError(f"{archive}: 7z could not unpack it ({res.stderr.strip()[:200]})")
        else:
            raise DownloadError(f"{archive}: unknown archive type {kind!r}")
        source = tmp
        if anchor:
            hits = sorted(tmp.rglob(anchor), key=lambda p: len(p.parts))
            if not hits:
                raise DownloadError(f"{archive}: does not contain {anchor}; is it the right archive?")
            source = hits[0].parent
        for item in source.iterdir():
            target = dest_dir / item.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
    return dest_dir


# --------------------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Without NAME or --all: list every pretrained file and its status. "
        "Mirror: set SVCOVER_HF_ENDPOINT (or HF_ENDPOINT) to replace https://huggingface.co. "
        "Proxy: the standard HTTPS_PROXY / HTTP_PROXY / NO_PROXY variables are honoured."
    )
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"pretrained model(s) to fetch: {', '.join(e.name for e in REGISTRY)}; 'uvr' = every uvr_* model")
    parser.add_argument("--all", action="store_true", help="fetch every pretrained model that is missing")
    parser.add_argument("--force", action="store_true", help="download again even if present")
    parser.add_argument("--url", help="download any file (a shared voice model, a mirror copy) from this URL")
    parser.add_argument("--to", metavar="PATH", help="with --url: where to save the file")
    parser.add_argument("--sha256", metavar="HEX", help="with --url: expected sha256; on mismatch nothing is saved")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds without data before giving up (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--retries", type=int, default=2, help="resume attempts after a dropped connection (default 2)")
    parser.add_argument("--no-verify", action="store_true", help="when listing: skip the sha256 check of present files")


def run_cli(args: argparse.Namespace) -> int:
    from core.progress import tqdm_progress

    if args.url or args.to:
        if not (args.url and args.to):
            raise SvcoverError("--url and --to go together: python -m core download --url URL --to PATH")
        with tqdm_progress(Path(args.to).name) as bar:
            path = download_url(args.url, args.to, args.sha256, None, bar, args.timeout, args.retries)
        print(f"saved {path}" + (" (sha256 verified)" if args.sha256 else ""))
        return 0
    names = [e.name for e in REGISTRY] if args.all else resolve_names(args.names)
    if not names:
        print(f"pretrained folder: {pretrained_root()}")
        for entry, st in zip(REGISTRY, all_status(verify=not args.no_verify), strict=True):
            print(f"  {entry.name:<20} {st.state:<15} {st.detail}")
        missing = missing_report(verify=False)
        if missing:
            print("\nmissing:\n" + missing)
        return 0
    failures = []
    for name in names:
        try:
            with tqdm_progress(name) as bar:
                st = install(name, bar, force=args.force, timeout=args.timeout, retries=args.retries)
            print(f"{name}: {st.state} ({st.detail})")
        except SvcoverError as e:
            failures.append(f"{name}: {e}")
            print(f"error: {e}")
    if failures:
        print(f"\n{len(failures)} download(s) failed. What is still missing and where to get it:")
        print(missing_report(verify=False))
        return 1
    return 0
