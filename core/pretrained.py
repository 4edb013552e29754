"""Pretrained weights: where they live, where they come from, and a verified, resumable downloader.

Files live in ``pretrained/`` or ``$SVCOVER_PRETRAINED`` at fixed relative paths (the names the
publishers use). :data:`REGISTRY` records, for every file the app uses, its download URLs (plus an
optional fallback source, e.g. an archive), sha256, size, audio-separator's MD5-of-the-tail key,
the expected file type, licence and whether those facts were checked against the publisher's page.
The registry is plain data: a new model is a new :class:`Pretrained` entry, not new code.

Guarantees of the downloader (``docs/models-and-security.md``):

* Only ``http``/``https``, checked for the first URL and again at every redirect.
* The destination and the checksum format are validated before any byte is fetched.
* Bytes go to a ``.part`` file beside the target (resumable with HTTP ``Range``); the file is renamed
  into place only after its size, sha256, MD5-of-the-tail and file type (zip/pickle/ONNX/JSON/7z,
  never an HTML page) check out. Anything else is deleted: nothing is left at the destination.
* A stall (no byte for ``timeout`` seconds) and a connection failure are reported differently.

``$SVCOVER_MIRROR=http://host:port/prefix`` makes every registry download fetch
``<prefix>/<original host>/<original path>``; otherwise Hugging Face URLs are rewritten to
``$SVCOVER_HF_ENDPOINT`` / ``$HF_ENDPOINT`` when set. ``HTTP(S)_PROXY``/``NO_PROXY`` are honoured
(requests' ``trust_env``). CLI: ``python -m core download [NAME...|--all]`` and
``python -m core download --url URL [--sha256 HEX] --to PATH``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import yaml

from core.errors import MissingPretrainedError, Remedy, SvcoverError
from core.experiment import PROJECT_ROOT
from core.fsutil import atomic_write_text
from core.progress import ProgressFn, report, scaled

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

CONTENT_ENCODER = "content/hubert_base.pt"
CONTENT_ENCODER_ALT = "content/checkpoint_best_legacy_500.pt"
RMVPE = "rmvpe/rmvpe.pt"
NSF_HIFIGAN_DIR = "nsf_hifigan"
DIFFUSION_SVC_DIR = "diffusion_svc"
DIFFUSION_SVC_BASE = f"{DIFFUSION_SVC_DIR}/model_0.pt"
UVR_DIR = "uvr"
UVR_VOCALS_MODEL = "UVR-MDX-NET-Voc_FT.onnx"

CHUNK = 1 << 20
NET_CHUNK = 64 << 10  # small network reads: a dropped connection loses at most this much
DEFAULT_TIMEOUT = 30.0  # seconds without a byte before a download is called stalled
HF_HOST = "https://huggingface.co"
USER_AGENT = "svcover-downloader"
ALLOWED_SCHEMES = ("http", "https")
MAX_REDIRECTS = 10
UVR_HASH_BYTES = 10000 * 1024  # audio-separator / UVR key a model by the MD5 of its last 10,000 KiB
MAX_REGISTRY_BYTES = 2 << 30  # a registry file of unknown size larger than this is refused (disk filling)
MAX_UNPACKED_BYTES = 4 << 30  # an archive that would unpack to more than this is refused (zip bombs)
MAX_ARCHIVE_MEMBERS = 1000
FILE_KINDS = ("torch", "onnx", "json", "yaml", "zip", "7z")
# the type a registry file is checked against when its entry does not name one
_KIND_BY_SUFFIX = {".pt": "torch", ".pth": "torch", ".ckpt": "torch", ".th": "torch", ".onnx": "onnx",
                   ".json": "json", ".yaml": "yaml", ".yml": "yaml"}
_SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")


class DownloadError(SvcoverError):
    """A download that failed (network, HTTP status, checksum); nothing was installed."""


# --------------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class RemoteFile:
    """One object to fetch. ``dest`` is a file path, or for an archive the folder it unpacks into.

    ``urls`` are tried in order (each serves the same bytes); when all fail, ``fallback`` (another
    source for the same model, e.g. an archive instead of a bare file) is tried. Every check that is
    set must pass before anything is put at ``dest``.
    """

    dest: str
    urls: tuple[str, ...]
    sha256: str | None = None
    size: int | None = None
    archive: str | None = None  # None | "zip" | "7z"
    # archives: a file name or glob marking the folder whose files go into dest (shallowest match)
    anchor: str | None = None
    anchor_as: str | None = None  # archives: the name the anchor file gets in dest (e.g. model_0.pt)
    kind: str | None = None  # file type to check, one of FILE_KINDS; None = implied by the name (.pt, .onnx …)
    md5_tail: str | None = None  # audio-separator's model key: MD5 of the file's last 10,000 KiB
    fallback: RemoteFile | None = None

    def checked_kind(self) -> str | None:
        """The file type checked after download: the archive type, ``kind``, or one implied by the name."""
        if self.archive:
            return self.archive
        return self.kind or _KIND_BY_SUFFIX.get(PurePosixPath(self.dest).suffix.lower())


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


_UVR_RELEASE = "https://github.com/TRvlvr/model_repo/releases/download/all_public_uvr_models"
_UVR_DATA = "https://raw.githubusercontent.com/TRvlvr/application_data/main"


def _uvr_model_file(model_file: str, md5_tail: str) -> RemoteFile:
    """An ONNX model of UVR's public release, checked the way audio-separator identifies it: the MD5 of its tail
    must be its key in UVR's MDX model table."""
    return RemoteFile(dest=f"{UVR_DIR}/{model_file}", urls=(f"{_UVR_RELEASE}/{model_file}",), kind="onnx", md5_tail=md5_tail)


def _optional_uvr_mdx_entry(name: str, model_file: str, md5_tail: str, title: str, used_by: str) -> Pretrained:
    """An optional MDX-Net ONNX model from the same UVR release as uvr_vocals (same licence and check)."""
    return Pretrained(
        name=name,
        title=title,
        files=(_uvr_model_file(model_file, md5_tail),),
        required=(f"{UVR_DIR}/{model_file}",),
        licence="MIT (Ultimate Vocal Remover model repository)",
        verified=False,
        notes="Same release as uvr_vocals; checked by its key in UVR's MDX model table (MD5 of the tail).",
        used_by=used_by,
        optional=True,
    )


REGISTRY: tuple[Pretrained, ...] = (
    Pretrained(
        name="contentvec",
        title="ContentVec-500 (HuBERT-base) content encoder, as distributed with RVC",
        files=(
            RemoteFile(
                dest=CONTENT_ENCODER,
                urls=(
                    f"{HF_HOST}/lj1995/VoiceConversionWebUI/resolve/main/hubert_base.pt",
                    # the copy the Diffusion-SVC Colab fetches; the pinned sha256 makes any copy safe to use
                    f"{HF_HOST}/OOPPEENN/encoder_model/resolve/main/hubert_base.pt",
                ),
                sha256="f54b40fd2802423a5643779c4861af1e9ee9c1564dc9d32f54f20b5ffba7db96",
                size=189_507_909,
                kind="torch",
                # if RVC's repository ever drops the legacy file: the trimmed ContentVec the Diffusion-SVC
                # README links (same network; no hash published, so only its type is checked)
                fallback=RemoteFile(
                    dest=CONTENT_ENCODER_ALT,
                    urls=(f"{HF_HOST}/ChiTu/Diffusion-SVC/resolve/main/checkpoint_best_legacy_500.pt",),
                    kind="torch",
                ),
            ),
        ),
        required=((CONTENT_ENCODER, CONTENT_ENCODER_ALT),),
        licence="MIT (lj1995/VoiceConversionWebUI model repository; ContentVec code and weights are MIT)",
        verified=False,
        notes="sha256 and size as quoted for the Hugging Face LFS object by several independent projects; "
        "not re-checked against the hub page from here. RVC's own code moved in 2026 to a Transformers "
        "copy (hubert_base/ folder); the fairseq-format hubert_base.pt is fetched from the repository root "
        "at revision main (no commit hash could be confirmed from here), so the sha256 is the pin; if both "
        "copies fail, ContentVec's trimmed checkpoint_best_legacy_500.pt from ChiTu/Diffusion-SVC is fetched "
        "instead (no hash published; type-checked, and opened with the safe loader like every checkpoint). "
        "ContentVec's own checkpoint_best_legacy_500.pt (same tensors, different bytes) is accepted at "
        "content/checkpoint_best_legacy_500.pt.",
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
                kind="torch",
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
        "the publisher states no sha256, so the archive's integrity (every member's CRC) is checked.",
        used_by="Convert",
        aliases=("vocoder", "nsf-hifigan"),
    ),
    Pretrained(
        name="diffusion_svc_base",
        title="Diffusion-SVC pretrained decoder base (contentvec768l12, full depth, 512 x 20)",
        files=(
            RemoteFile(
                dest=DIFFUSION_SVC_BASE,
                # the plain checkpoint the official Diffusion-SVC Colab downloads (no archive program needed)
                urls=(f"{HF_HOST}/OOPPEENN/pretrained_model/resolve/main/contentvec768l12_full_512x20_model_0.pt",),
                kind="torch",
                fallback=RemoteFile(
                    dest=DIFFUSION_SVC_DIR,
                    urls=(f"{HF_HOST}/ChiTu/Diffusion-SVC/resolve/main/v0.1/contentvec768l12.7z",),
                    archive="7z",
                    # anchored on the checkpoint: the archive's layout and whether it holds a config.yaml
                    # could not be checked from here; a config.yaml beside the checkpoint comes along
                    anchor="*.pt",
                    anchor_as="model_0.pt",
                ),
            ),
        ),
        required=(DIFFUSION_SVC_BASE,),  # config.yaml is optional: the architecture is read from the weights
        licence="MIT code (CNChTu/Diffusion-SVC); weights trained on VCTK (CC BY 4.0) and M4Singer "
        "(non-commercial research licence)",
        verified=False,
        notes="Plain model_0.pt from OOPPEENN/pretrained_model (the Diffusion-SVC Colab's source) first, "
        "the 7z from the Diffusion-SVC README's table as fallback (unpacked in Python, py7zr). No sha256 "
        "is published; the file must be a complete torch zip checkpoint. config.yaml is optional: the "
        "network size is read from the tensor shapes, and a config.yaml beside model_0.pt, when present, "
        "supplies k_step_max.",
        used_by="Train (fine-tuning)",
        aliases=("diffusion_svc", "base"),
    ),
    Pretrained(
        name="uvr_vocals",
        title="UVR MDX-Net vocal separation model + audio-separator metadata",
        files=(
            _uvr_model_file(UVR_VOCALS_MODEL, md5_tail="77d07b2667ddf05b9e3175941b4454a0"),
            RemoteFile(dest=f"{UVR_DIR}/download_checks.json", urls=(f"{_UVR_DATA}/filelists/download_checks.json",),
                       kind="json"),
            RemoteFile(dest=f"{UVR_DIR}/mdx_model_data.json", urls=(f"{_UVR_DATA}/mdx_model_data/model_data_new.json",),
                       kind="json"),
            RemoteFile(dest=f"{UVR_DIR}/vr_model_data.json", urls=(f"{_UVR_DATA}/vr_model_data/model_data_new.json",),
                       kind="json"),
        ),
        required=(f"{UVR_DIR}/{UVR_VOCALS_MODEL}", f"{UVR_DIR}/mdx_model_data.json"),
        licence="MIT (Ultimate Vocal Remover model repository)",
        verified=False,
        notes="URLs follow audio-separator's download locations. The model is checked the way "
        "audio-separator identifies it: the MD5 of its last 10,000 KiB must be its key in UVR's "
        "model_data_new.json. The metadata JSON files change upstream, so they are only checked to be JSON.",
        used_by="Cover (separation)",
        aliases=("separation",),
    ),
    _optional_uvr_mdx_entry(
        "uvr_karaoke",
        "UVR_MDXNET_KARA_2.onnx",
        "1d64a6d2c30f709b8c9b4ce1366d96ee",
        "UVR MDX-Net karaoke model (lead vocal vs. backing vocals)",
        "Cover (optional: remove backing vocals)",
    ),
    _optional_uvr_mdx_entry(
        "uvr_dereverb",
        "Reverb_HQ_By_FoxJoy.onnx",
        "cd5b2989ad863f116c855db1dfe24e39",
        "UVR MDX-Net de-reverb model (FoxJoy)",
        "Cover (optional: remove reverb)",
    ),
)

def _roformer_entry(name: str, checkpoint: str, config: str, title: str, licence: str, used_by: str, sdr: str,
                    optional: bool = True) -> Pretrained:
    """A Roformer checkpoint + its yaml, from the locations audio-separator downloads them from."""
    uvr = "https://github.com/TRvlvr/model_repo/releases/download/all_public_uvr_models"
    configs = "https://github.com/nomadkaraoke/python-audio-separator/releases/download/model-configs"
    return Pretrained(
        name=name,
        title=title,
        files=(
            RemoteFile(dest=f"{UVR_DIR}/{checkpoint}", urls=(f"{uvr}/{checkpoint}", f"{configs}/{checkpoint}")),
            RemoteFile(dest=f"{UVR_DIR}/{config}", urls=(f"{uvr}/mdx_model_data/mdx_c_configs/{config}", f"{configs}/{config}")),
        ),
        required=(f"{UVR_DIR}/{checkpoint}", f"{UVR_DIR}/{config}"),
        licence=licence,
        verified=False,
        notes=f"{sdr} URLs follow audio-separator 0.47.1's download order; no checksum published. "
        "Loaded through svcover's safe_load (no pickled code runs). Needs uvr_vocals' metadata files.",
        used_by=used_by,
        optional=optional,
    )


REGISTRY = REGISTRY + (
    _roformer_entry(
        "roformer_vocals", "vocals_mel_band_roformer.ckpt", "vocals_mel_band_roformer.yaml",
        "Mel-Band Roformer vocal separation (Kimberley Jensen) — default on CUDA GPUs",
        "not stated by the publisher (no licence file in KimberleyJensen/Mel-Band-Roformer-Vocal-Model)",
        "Cover (separation, default with a CUDA GPU)", "Vocal SDR 12.60 dB in audio-separator's models-scores.json.",
    ),
    _roformer_entry(
        "roformer_vocals_big", "melband_roformer_big_beta4.ckpt", "config_melbandroformer_big_beta4.yaml",
        "Mel-Band Roformer Big Beta 4 vocal separation (unwa)",
        "not stated by the publisher (pcunwa/Mel-Band-Roformer-big on Hugging Face)",
        "Cover (separation, optional)", "Vocal SDR 12.52 dB in audio-separator's models-scores.json.",
    ),
    _roformer_entry(
        "roformer_karaoke", "mel_band_roformer_karaoke_aufr33_viperx_sdr_10.1956.ckpt",
        "mel_band_roformer_karaoke_aufr33_viperx_sdr_10.1956_config.yaml",
        "Mel-Band Roformer karaoke model, lead vs. backing vocals (aufr33 & viperx)",
        "not stated by the publishers", "Cover (lead/backing split, default with a CUDA GPU)",
        "Vocal SDR 8.45 dB in audio-separator's models-scores.json (UVR_MDXNET_KARA_2: 5.43 dB).",
    ),
    _roformer_entry(
        "roformer_dereverb", "dereverb_mel_band_roformer_anvuew_sdr_19.1729.ckpt", "dereverb_mel_band_roformer_anvuew.yaml",
        "Mel-Band Roformer de-reverb model (anvuew)", "not stated in audio-separator's model list (anvuew on Hugging Face)",
        "Cover (de-reverb, default with a CUDA GPU)", "No vocal SDR (not a vocal model); publisher's dereverb SDR 19.17 dB.",
    ),
)

# Names that fetch several entries at once (a shortcut for the CLI; messages name the single entry).
GROUPS: dict[str, tuple[str, ...]] = {
    "uvr": ("uvr_vocals", "uvr_karaoke", "uvr_dereverb"),
    # the CUDA defaults (needs uvr_vocals for audio-separator's metadata files)
    "roformer": ("uvr_vocals", "roformer_vocals", "roformer_karaoke", "roformer_dereverb"),
}


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

    Raises :class:`MissingPretrainedError` naming the expected path, with the model to download as its remedy.
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
        f"missing pretrained file {root / relative}", remedy=Remedy("download", name, f"or copy it there by hand{source}")
    )


# --------------------------------------------------------------------------------------------- status


@dataclass(frozen=True)
class Status:
    name: str
    # "ok" | "present" (no checksum published) | "missing" | "incomplete" | "wrong checksum" | "damaged"
    # (no checksum published, but not a complete file of its type, e.g. an HTML page saved by hand)
    state: str
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
    keyed = [f for f in entry.files if f.md5_tail and not f.archive and (root / f.dest).is_file()]
    if verify:
        for f in pinned:
            digest = cached_sha256(root / f.dest)
            if digest != f.sha256:
                return Status(entry.name, "wrong checksum", f"{f.dest}: sha256 {digest[:12]}… expected {f.sha256[:12]}…")
        for f in keyed:
            digest = md5_tail(root / f.dest)
            if digest != f.md5_tail:
                return Status(entry.name, "wrong checksum",
                              f"{f.dest}: MD5 of the tail {digest} is not its key {f.md5_tail} in UVR's model table")
        typed = [f for f in entry.files if f.checked_kind() and not f.archive and f not in pinned and f not in keyed
                 and (root / f.dest).is_file()]
        for f in typed:  # no hash published: at least the file must be a complete file of its type
            problem = file_type_problem(root / f.dest, f.checked_kind())
            if problem:
                return Status(entry.name, "damaged", f"{f.dest}: {problem}; download it again")
        if pinned or keyed:
            what = "sha256" if pinned else "MD5 key (audio-separator's model table)"
            return Status(entry.name, "ok", f"present, {what} verified")
    return Status(entry.name, "present", "present" + ("" if verify else " (checksum not checked)"))


def all_status(verify: bool = True) -> list[Status]:
    return [status(e, verify=verify) for e in REGISTRY]


def missing_report(verify: bool = False, for_ui: bool = False) -> str:
    """Exactly which files are missing, where they go and where to get them (for offline users).

    ``for_ui``: the last line of each entry names the Models tab action instead of the CLI command.
    """
    root = pretrained_root()
    lines = []
    for entry, st in zip(REGISTRY, all_status(verify=verify), strict=True):
        if st.usable or (entry.optional and st.state == "missing"):
            continue
        lines.append(f"- {entry.name} ({entry.title}): {st.detail}")
        for f in entry.files:
            for k, source in enumerate(_sources(f)):
                where = (f" ({source.archive} archive: unpack into {root / source.dest})" if source.archive
                         else f" -> {root / source.dest}")
                lines.append(f"    {'or get' if k else 'get'} {' or '.join(source.urls)}{where}")
        remedy = Remedy("download", entry.name)
        lines.append(f"    or {remedy.ui() if for_ui else remedy.cli()}")
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


def md5_tail(path: Path) -> str:
    """audio-separator's (and UVR's) model key: MD5 of the last 10,000 KiB (the whole file if smaller)."""
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - UVR_HASH_BYTES))
        return hashlib.md5(fh.read()).hexdigest()


def _sources(remote: RemoteFile) -> list[RemoteFile]:
    """``remote`` and its fallbacks, in the order they are tried."""
    out = []
    current: RemoteFile | None = remote
    while current is not None:
        out.append(current)
        current = current.fallback
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------- download


def mirror_url(url: str) -> str:
    """Where a registry URL is fetched from.

    ``$SVCOVER_MIRROR=http://host:port/prefix`` turns ``https://HOST/PATH?Q`` into
    ``http://host:port/prefix/HOST/PATH?Q`` (every host: one setting for a mirror or proxy cache, and
    for tests with a local server). Without it, Hugging Face URLs are rewritten to
    ``$SVCOVER_HF_ENDPOINT`` (else ``$HF_ENDPOINT``) when set.
    """
    mirror = os.environ.get("SVCOVER_MIRROR", "").strip()
    if mirror:
        parts = urlsplit(mirror)
        if parts.scheme not in ALLOWED_SCHEMES or not parts.netloc or parts.query or parts.fragment:
            raise DownloadError(f"SVCOVER_MIRROR={mirror!r}: must look like http://host:port/prefix (http or https)")
        original = urlsplit(url)
        query = f"?{original.query}" if original.query else ""
        return f"{mirror.rstrip('/')}/{original.netloc}{original.path}{query}"
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
    # the bytes as stored: sizes, Range offsets and hashes then all refer to the same thing
    session.headers["Accept-Encoding"] = "identity"
    return session


def part_path(dest: Path) -> Path:
    """The partial download beside ``dest``; a dot-file so folder listings never show it."""
    return dest.with_name(f".{dest.name}.part")


def check_url(url: str, redirected_from: str | None = None) -> None:
    """Refuse anything but http(s) (``file://``, ``ftp://``, data: …), also as a redirect target."""
    parts = urlsplit(url)
    if parts.scheme.lower() in ALLOWED_SCHEMES and parts.netloc:
        return
    if redirected_from:
        raise DownloadError(f"{redirected_from}: refused a redirect to {url!r}: only http and https downloads are allowed")
    raise DownloadError(f"{url!r}: not an http(s) URL; only http and https downloads are allowed")


def check_sha256(sha256: str | None) -> str | None:
    """The expected sha256 in lower case; a malformed one is refused before anything is fetched."""
    if sha256 is None:
        return None
    if not _SHA256_RE.fullmatch(sha256.strip()):
        raise DownloadError(f"sha256 {sha256!r} is not a sha256 (64 hexadecimal digits); nothing was downloaded")
    return sha256.strip().lower()


def check_destination(dest: Path) -> None:
    """The destination must be a file path whose folder can exist; checked before any byte is fetched."""
    if dest.is_dir():
        raise DownloadError(f"{dest}: is a folder; give the path of the file to save (e.g. {dest / 'model.pt'})")
    for parent in dest.parents:
        if parent.exists():
            if not parent.is_dir():
                raise DownloadError(f"{dest}: cannot save there: {parent} is a file, not a folder")
            break


def download_url(
    url: str,
    dest: str | Path,
    sha256: str | None = None,
    size: int | None = None,
    progress: ProgressFn | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = 2,
    session: requests.Session | None = None,
    *,
    kind: str | None = None,
    md5_key: str | None = None,
    max_bytes: int | None = None,
) -> Path:
    """Download ``url`` to ``dest``: resumable, verified, then renamed into place.

    ``url`` is fetched as given (registry downloads pass it through :func:`mirror_url` first). The
    destination, the sha256 format and the URL scheme are checked before the first request; every
    redirect target must be http(s) too. The bytes go to a ``.part`` file beside ``dest``; an
    interrupted download is resumed with an HTTP ``Range`` request (by the retries here or by the
    next call). Only when the size, sha256, MD5 key (``md5_key``, audio-separator's MD5 of the last
    10,000 KiB) and the file type (``kind``: never an HTML page) match is the file renamed to
    ``dest``; a mismatch deletes the partial file and raises :class:`DownloadError`, so nothing is
    ever installed at ``dest`` from a bad body. A body longer than ``size`` (or ``max_bytes`` when
    the size is unknown) is cut off and refused.
    """
    dest = Path(dest)
    check_url(url)
    sha256 = check_sha256(sha256)
    check_destination(dest)
    if kind is not None and kind not in FILE_KINDS:
        raise DownloadError(f"unknown file kind {kind!r} for {dest.name}: choose from {', '.join(FILE_KINDS)}")
    created = next((d for d in reversed(dest.parents) if not d.exists()), None)  # removed again on failure
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        return _download(url, dest, sha256, size, progress, timeout, retries, session, kind, md5_key, max_bytes)
    except DownloadError:
        _remove_empty_folders(dest.parent, created)
        raise


def _remove_empty_folders(folder: Path, top: Path | None) -> None:
    """Remove ``folder`` and its parents up to ``top`` (the first folder this download created) if empty."""
    if top is None:
        return
    for d in (folder, *folder.parents):
        with contextlib.suppress(OSError):
            d.rmdir()  # fails (and is ignored) when something is inside
        if d == top:
            return


def _download(url: str, dest: Path, sha256: str | None, size: int | None, progress: ProgressFn | None,
              timeout: float, retries: int, session: requests.Session | None, kind: str | None,
              md5_key: str | None, max_bytes: int | None = None) -> Path:
    import requests

    session = session or make_session()
    part = part_path(dest)
    resumed_from = part.stat().st_size if part.exists() else 0
    attempt = 0
    while True:
        try:
            _fetch_into(session, url, part, size, progress, timeout, kind, max_bytes)
            break
        except requests.exceptions.HTTPError as e:
            code = e.response.status_code if e.response is not None else "?"
            raise DownloadError(f"{url}: HTTP {code}; nothing was saved to {dest}") from None
        except DownloadError:
            part.unlink(missing_ok=True)
            raise
        except (requests.exceptions.RequestException, _ShortBody) as e:
            attempt += 1
            kept = part.stat().st_size if part.exists() else 0
            if attempt > retries:
                resume = f"; {kept} bytes kept, run again to resume" if kept else "; nothing was saved"
                raise DownloadError(f"{url}: {_describe_network_error(e, timeout)} while downloading {dest.name}{resume}") from None
            log.info("download of %s interrupted (%s); resuming at byte %d", dest.name, type(e).__name__, kept)
    try:
        _verify_part(part, url, dest, sha256, size, kind, md5_key, resumed=resumed_from > 0)
    except _StalePart:
        log.info("resumed download of %s failed verification; downloading it again from the start", dest.name)
        return _download(url, dest, sha256, size, progress, timeout, retries, session, kind, md5_key, max_bytes)
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    if sha256:
        _remember_sha256(dest, sha256)
    report(progress, 1.0, f"{dest.name} done")
    return dest


class _ShortBody(Exception):
    """The server closed the connection before Content-Length bytes arrived."""


class _StalePart(Exception):
    """A resumed .part failed its checksum: it was from an older file version; start over once."""


def _describe_network_error(e: Exception, timeout: float) -> str:
    """One clause telling a stall (the server went quiet) from a connection that failed or dropped."""
    import requests
    import urllib3

    if isinstance(e, requests.exceptions.ConnectTimeout):
        return f"connection failed (no answer from the server within {timeout:g} s)"
    inner = e.args[0] if e.args else None
    stalled = isinstance(e, requests.exceptions.ReadTimeout) or isinstance(
        inner, urllib3.exceptions.ReadTimeoutError | TimeoutError)
    if stalled:
        return f"stalled (no data for {timeout:g} s; the server stopped sending)"
    if isinstance(e, _ShortBody | requests.exceptions.ChunkedEncodingError):
        return "connection dropped before the end of the file"
    reason = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(e))
    return f"connection failed ({reason.group(1).strip() if reason else type(e).__name__})"


def _open_following_redirects(session: requests.Session, url: str, headers: dict, timeout: float):
    """GET ``url``, following at most MAX_REDIRECTS redirects by hand so each target's scheme is checked."""
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        resp = session.get(current, stream=True, timeout=(timeout, timeout), headers=headers, allow_redirects=False)
        if not resp.is_redirect:
            return resp
        target = urljoin(current, resp.headers["Location"])
        resp.close()
        check_url(target, redirected_from=url)
        if urlsplit(current).scheme.lower() == "https" and urlsplit(target).scheme.lower() == "http":
            raise DownloadError(f"{url}: refused a redirect from https to plain http ({target!r}); nothing was saved")
        current = target
    raise DownloadError(f"{url}: more than {MAX_REDIRECTS} redirects; nothing was saved")


def _fetch_into(session: requests.Session, url: str, part: Path, size: int | None,
                progress: ProgressFn | None, timeout: float, kind: str | None = None,
                max_bytes: int | None = None) -> None:
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have == size:
        return  # a previous run got every byte; only verification is left
    headers = {"Range": f"bytes={have}-"} if have else {}
    with _open_following_redirects(session, url, headers, timeout) as resp:
        if resp.status_code == 416 and have:  # range beyond the end: the part file is already complete
            return
        resp.raise_for_status()
        content_type = resp.headers.get("Content-Type", "").lower()
        if kind and content_type.startswith("text/html"):
            raise DownloadError(f"{url}: the server sent an HTML page (a login, error or consent page?), "
                                f"not the {_KIND_NAMES[kind]}; nothing was saved")
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
                limit = size if size is not None else max_bytes
                if limit is not None and done > limit:  # never fill the disk for a hostile or wrong server
                    what = "the expected" if size is not None else "the allowed"
                    raise DownloadError(f"{url}: the server sent more than {what} {limit} bytes; "
                                        "refused, nothing was installed")
                if total:
                    report(progress, min(done / total, 1.0), f"{part.name[1:-5]} {done / 1e6:.1f}/{total / 1e6:.1f} MB")
        if expected_end is not None and done < expected_end:
            raise _ShortBody()


_KIND_NAMES = {"torch": "PyTorch checkpoint", "onnx": "ONNX model", "json": "JSON file", "yaml": "YAML file",
               "zip": "zip archive", "7z": "7z archive"}


def _verify_part(part: Path, url: str, dest: Path, sha256: str | None, size: int | None, kind: str | None,
                 md5_key: str | None, resumed: bool = False) -> None:
    """Raise DownloadError (or _StalePart) unless the downloaded bytes are the expected file."""
    got = part.stat().st_size if part.exists() else 0
    head = b""
    if part.exists():
        with open(part, "rb") as fh:
            head = fh.read(512)
    if kind and _looks_like_html(head):
        raise DownloadError(f"{url}: got an HTML page, not the {_KIND_NAMES[kind]}; nothing was installed at {dest}")
    if size is not None and got != size:
        raise DownloadError(f"{url}: got {got} bytes, expected {size} (the body was cut short or is another file); "
                            f"nothing was installed at {dest}")
    if sha256:
        digest = sha256_file(part)
        if digest != sha256:
            if resumed:
                part.unlink(missing_ok=True)
                raise _StalePart()
            raise DownloadError(f"{url}: sha256 mismatch (got {digest}, expected {sha256}); nothing was installed at {dest}")
    if md5_key:
        digest = md5_tail(part)
        if digest != md5_key:
            raise DownloadError(f"{url}: not the expected model (MD5 of the last 10,000 KiB is {digest}, audio-separator's "
                                f"table lists {md5_key}); nothing was installed at {dest}")
    if kind:
        problem = file_type_problem(part, kind)
        if problem:
            raise DownloadError(f"{url}: {problem}; nothing was installed at {dest}")


def _looks_like_html(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml", b"<!--"))


def file_type_problem(path: Path, kind: str) -> str | None:
    """Why ``path`` is not a complete file of ``kind`` (None if it looks right).

    Cheap structural checks that catch an HTML page, a truncated body (zip-based formats keep their
    directory at the end) and an unrelated file: torch checkpoints are zip files (or legacy
    pickles), ONNX models are protobuf starting with the ir_version field, JSON must parse.
    """
    name = _KIND_NAMES.get(kind, kind)
    with open(path, "rb") as fh:
        head = fh.read(512)
    if not head:
        return f"got an empty file, not a {name}"
    if _looks_like_html(head):
        return f"got an HTML page, not the {name}"
    head = head[:8]
    if kind in ("torch", "zip"):
        if head.startswith(b"PK\x03\x04"):
            try:
                with zipfile.ZipFile(path) as zf:
                    if not zf.namelist():
                        return f"got an empty zip archive, not a {name}"
                    if kind == "zip":
                        bad = zf.testzip()
                        if bad:
                            return f"the zip archive is damaged (member {bad!r} fails its CRC check)"
            except (zipfile.BadZipFile, OSError, EOFError) as e:
                return f"the {name} is incomplete or damaged ({e})"
            return None
        if kind == "torch" and head[:1] == b"\x80":  # legacy (pre-1.6) torch.save: a pickle stream
            return None
        return f"got a file that is not a {name} (starts with {head[:8]!r})"
    if kind == "onnx":
        return None if head[:1] == b"\x08" else f"got a file that is not an ONNX model (starts with {head[:8]!r})"
    if kind == "json":
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            return f"got a file that is not valid JSON ({str(e).splitlines()[0][:80]})"
        return None
    if kind == "yaml":
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            return f"got a file that is not valid YAML ({str(e).splitlines()[0][:80]})"
        return None if isinstance(data, dict) else "got a YAML file that is not a mapping of settings"
    if kind == "7z":
        if not head.startswith(b"7z\xbc\xaf\x27\x1c"):
            return f"got a file that is not a 7z archive (starts with {head[:8]!r})"
        import py7zr

        try:
            with py7zr.SevenZipFile(path, "r") as archive:
                archive.getnames()
        except (py7zr.exceptions.ArchiveError, OSError, EOFError, ValueError) as e:
            return f"the 7z archive is incomplete or damaged ({e})"
        return None
    return None


def install(name: str, progress: ProgressFn | None = None, force: bool = False,
            timeout: float = DEFAULT_TIMEOUT, retries: int = 2) -> Status:
    """Download and install the registry entry ``name`` (skipped when already present and valid).

    Every URL goes through :func:`mirror_url` (``$SVCOVER_MIRROR``). A failure raises
    :class:`DownloadError` listing each URL that was tried and why it failed.
    """
    entry = get(name)
    current = status(entry)
    if current.usable and not force:
        report(progress, 1.0, f"{entry.name}: already installed")
        return current
    if os.environ.get("SVCOVER_MIRROR"):
        mirror_url(HF_HOST)  # a malformed mirror setting is one clear line before anything is fetched
    root = pretrained_root()
    n = len(entry.files)
    for i, remote in enumerate(entry.files):
        sub = _sub_progress(progress, i / n, (i + 1) / n)
        target = root / remote.dest
        if not remote.archive and target.is_file() and not force and _file_still_valid(target, remote):
            continue
        _install_remote(entry, remote, root, sub, timeout, retries)
    final = status(entry)
    if not final.usable:
        raise DownloadError(f"{entry.name}: downloaded, but {final.detail} under {root}")
    return final


def _file_still_valid(path: Path, remote: RemoteFile) -> bool:
    """Whether a file already on disk passes every check its registry entry has (else it is fetched again)."""
    if remote.sha256 and cached_sha256(path) != remote.sha256:
        return False
    if remote.md5_tail and md5_tail(path) != remote.md5_tail:
        return False
    kind = remote.checked_kind()
    return not (kind and file_type_problem(path, kind))


def _sub_progress(progress: ProgressFn | None, start: float, end: float) -> ProgressFn | None:
    if progress is None:
        return None
    return scaled(progress, start, end)


def _install_remote(entry: Pretrained, remote: RemoteFile, root: Path, progress: ProgressFn | None,
                    timeout: float, retries: int) -> None:
    tried: list[str] = []
    for source in _sources(remote):
        for original in source.urls:
            url = mirror_url(original)
            if source.archive:
                archive = root / ".downloads" / PurePosixPath(urlsplit(original).path).name
            else:
                archive = root / source.dest
            try:
                download_url(url, archive, source.sha256, source.size, progress, timeout, retries,
                             kind=source.checked_kind(), md5_key=source.md5_tail, max_bytes=MAX_REGISTRY_BYTES)
                if source.archive:
                    try:
                        extract_archive(archive, root / source.dest, source.archive, source.anchor, source.anchor_as)
                    finally:
                        archive.unlink(missing_ok=True)
                        with contextlib.suppress(OSError):
                            archive.parent.rmdir()  # only when empty
            except DownloadError as e:
                tried.append(str(e))
                continue
            return
    hands = []
    for source in _sources(remote):
        verb = f"unpack it into {root / source.dest}" if source.archive else f"put it at {root / source.dest}"
        hands.append(f"download {' or '.join(source.urls)} and {verb}")
    raise DownloadError(f"{entry.name}: every source failed: " + " | ".join(tried)
                        + " | offline? by hand: " + "; or ".join(hands))


def _safe_members(names: list[str], archive: Path) -> None:
    if len(names) > MAX_ARCHIVE_MEMBERS:
        raise DownloadError(f"{archive}: refused to unpack: {len(names)} members (at most {MAX_ARCHIVE_MEMBERS})")
    for name in names:
        p = PurePosixPath(name.replace("\\", "/"))
        if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
            raise DownloadError(f"{archive}: refused to unpack: member {name!r} would land outside the folder")


def _check_unpacked_size(total: int, archive: Path) -> None:
    if total > MAX_UNPACKED_BYTES:
        raise DownloadError(f"{archive}: refused to unpack: it would expand to {total / 2**30:.1f} GiB "
                            f"(at most {MAX_UNPACKED_BYTES / 2**30:.0f} GiB)")


def _pick_anchor(tmp: Path, anchor: str, anchor_as: str | None, archive: Path) -> Path:
    """The file matching ``anchor`` (a name or glob) in the shallowest folder; ``anchor_as`` wins ties."""
    hits = [p for p in tmp.rglob("*") if p.is_file() and fnmatch.fnmatch(p.name, anchor)]
    if not hits:
        raise DownloadError(f"{archive}: does not contain {anchor}; is it the right archive?")
    return min(hits, key=lambda p: (len(p.parts), p.name != anchor_as, p.name))


def extract_archive(archive: Path, dest_dir: Path, kind: str, anchor: str | None = None,
                    anchor_as: str | None = None) -> Path:
    """Unpack ``archive`` (zip or 7z, both in Python) into ``dest_dir``.

    The files of the folder that holds ``anchor`` (a file name or glob, e.g. ``config.json`` or
    ``*.pt``) are moved into ``dest_dir``, so an archive with one top-level folder lands flat; with
    ``anchor_as`` the anchor file is renamed (e.g. to ``model_0.pt``). Members escaping the folder,
    links, more than MAX_ARCHIVE_MEMBERS members or more than MAX_UNPACKED_BYTES are refused. Work
    happens in a temporary folder beside ``dest_dir``: on any error nothing is left at ``dest_dir``.
    """
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".tmp-unpack-", dir=dest_dir.parent) as tmp_name:
        tmp = Path(tmp_name) / "unpacked"  # a folder of its own, so it can be renamed into place whole
        tmp.mkdir()
        if kind == "zip":
            try:
                with zipfile.ZipFile(archive) as zf:
                    _safe_members(zf.namelist(), archive)
                    _check_unpacked_size(sum(i.file_size for i in zf.infolist()), archive)
                    zf.extractall(tmp)
            except zipfile.BadZipFile as e:
                raise DownloadError(f"{archive}: not a valid zip archive ({e})") from None
        elif kind == "7z":
            _extract_7z(archive, tmp)
        else:
            raise DownloadError(f"{archive}: unknown archive type {kind!r}")
        source = tmp
        if anchor:
            hit = _pick_anchor(tmp, anchor, anchor_as, archive)
            source = hit.parent
            if anchor_as and hit.name != anchor_as:
                os.replace(hit, source / anchor_as)
        if not dest_dir.exists():
            os.replace(source, dest_dir)  # one rename: the folder appears complete or not at all
            return dest_dir
        for item in source.iterdir():
            target = dest_dir / item.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
    return dest_dir


def _extract_7z(archive: Path, tmp: Path) -> None:
    import py7zr

    try:
        with py7zr.SevenZipFile(archive, "r") as zf:
            files = zf.files
            _safe_members([f.filename for f in files], archive)
            links = [f.filename for f in files if f.is_symlink]
            if links:
                raise DownloadError(f"{archive}: refused to unpack: it contains links ({links[0]!r})")
            _check_unpacked_size(sum(int(f.uncompressed or 0) for f in files if not f.is_directory), archive)
            zf.extractall(path=tmp)
    except py7zr.exceptions.UnsupportedCompressionMethodError as e:
        raise DownloadError(f"{archive}: uses a 7z compression method py7zr cannot unpack ({e})") from None
    except py7zr.exceptions.PasswordRequired:
        raise DownloadError(f"{archive}: is password-protected; svcover cannot unpack it") from None
    except py7zr.exceptions.AbsolutePathError as e:
        raise DownloadError(f"{archive}: refused to unpack: a member would land outside the folder ({e})") from None
    except (py7zr.exceptions.ArchiveError, EOFError, ValueError) as e:
        raise DownloadError(f"{archive}: not a valid 7z archive ({e})") from None
