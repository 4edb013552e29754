"""Exceptions whose message is a single line meant for the user.

Every stage raises a subclass of :class:`SvcoverError` for problems the user can fix
(bad file, missing model, bad name). The CLI prints ``str(err)`` and exits non-zero; the
web UI shows it in a red box. Anything else is a bug and keeps its traceback.

When the fix is another step (download a model, build the dataset, extract, train), the error carries
it as a :class:`Remedy` instead of baking one surface's wording into the text: ``str(err)`` says the
CLI command, :meth:`SvcoverError.for_ui` says the UI action (Models tab → Download, Train tab).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

# The UI's name for each step, as the browser user sees it (tab → button).
_UI_ACTIONS = {
    "dataset": "build it in the Dataset tab (Build dataset) for '{target}'",
    "extract": "run the Extract tab (Extract features) for '{target}'",
    "train": "train '{target}' in the Train tab first",
    # The UI has no index button: say how to go on without it, and the one place the index is built.
    "index": "set Retrieval index rate to 0 (off), or build the index of '{target}' on the command line: "
    "python -m core index --exp {target}",
}
_CLI_ACTIONS = {
    "dataset": "python -m core dataset --exp {target}",
    "extract": "python -m core extract --exp {target}",
    "train": "python -m core train --exp {target}",
    "index": "python -m core index --exp {target}",
}


@dataclass(frozen=True)
class Remedy:
    """What fixes a problem: ``action`` ("download", "dataset", "extract", "train", "index") on ``target``
    (a pretrained model name for downloads, else an experiment name). ``by_hand`` is the offline alternative."""

    action: str
    target: str
    by_hand: str = ""

    def cli(self) -> str:
        if self.action == "download":
            return f"fetch it with 'python -m core download {self.target}'" + (f" {self.by_hand}" if self.by_hand else "")
        return f"run '{_CLI_ACTIONS[self.action].format(target=self.target)}'"

    def ui(self) -> str:
        if self.action == "download":
            text = (f"open the Models tab, tick '{self.target}' and click Download selected "
                    "(or Download everything needed in the first-run panel)")  # fmt: skip
            return text + (f"; offline, {self.by_hand.removeprefix('or ')}" if self.by_hand else "")
        return _UI_ACTIONS[self.action].format(target=self.target)


class SvcoverError(Exception):
    """A problem the user can act on; ``str(err)`` is one line naming the file and the problem.

    ``remedy`` (keyword only) names the step that fixes it; ``str(err)`` then ends with its CLI form.
    """

    def __init__(self, message: str = "", *, remedy: Remedy | None = None) -> None:
        self.problem = message
        self.remedy = remedy
        super().__init__(f"{message}: {remedy.cli()}" if remedy else message)

    def for_ui(self) -> str:
        """The message for the web UI: the same problem, with the fix said as a UI action."""
        return f"{self.problem}: {self.remedy.ui()}" if self.remedy else str(self)


class InvalidNameError(SvcoverError, ValueError):
    """An experiment or file name that is not allowed (path traversal, bad characters)."""


class AudioDecodeError(SvcoverError):
    """A file that could not be decoded as audio."""


class MissingPretrainedError(SvcoverError, FileNotFoundError):
    """A pretrained weight file is not on disk; ``remedy`` names the model that provides it."""

    @property
    def model(self) -> str | None:
        """The pretrained model (registry name) to download, if known."""
        return self.remedy.target if self.remedy and self.remedy.action == "download" else None


class CheckpointError(SvcoverError):
    """A checkpoint that cannot be loaded safely (truncated, malicious, wrong model)."""


class NothingToDoError(SvcoverError):
    """The inputs contain nothing usable (no audio files, no voiced audio, ...)."""


class OutputIsInputError(SvcoverError):
    """An output path that is (or links to) one of the stage's inputs: writing would destroy the input."""


class WriteError(SvcoverError, OSError):
    """Writing a file failed (disk full, permission denied, ...); one line naming the path and the cause.

    Also an :class:`OSError`, so code that already handles OS errors keeps working.
    """


# Why a write failed, in words a user can act on.
_CAUSES = {
    errno.ENOSPC: "disk full",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.EFBIG: "file too large for this file system or limit",
    errno.ENAMETOOLONG: "file name too long",
    errno.EIO: "input/output error (failing disk or removed drive?)",
    errno.EISDIR: "is a folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
}
if hasattr(errno, "EDQUOT"):  # not defined on every platform
    _CAUSES[errno.EDQUOT] = "disk quota exceeded"


def os_error_cause(error: BaseException, folder: Path | None = None) -> str:
    """A short cause for a failed write: ``disk full``, ``permission denied``, or the library's own words."""
    code = getattr(error, "errno", None)
    text = str(error)
    if code is None:  # "... (os error 28)" from Rust writers
        m = re.search(r"os error (\d+)", text)
        code = int(m.group(1)) if m else None
    if code in _CAUSES:
        return _CAUSES[code]
    if isinstance(error, OSError) and error.strerror:
        return error.strerror + (f" ({error.filename})" if error.filename and folder is not None
                                 and Path(error.filename).parent != folder else "")  # fmt: skip
    if folder is not None:  # no errno from the writer: look at the disk ourselves
        with contextlib.suppress(OSError):
            if shutil.disk_usage(folder).free < (1 << 20):
                return "disk full"
        if not os.access(folder, os.W_OK):
            return "permission denied"
    first = text.strip().splitlines()[0][:160] if text.strip() else ""
    return f"{type(error).__name__}{': ' + first if first else ''}"
