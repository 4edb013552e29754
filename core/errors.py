"""Exceptions whose message is a single line meant for the user.

Every stage raises a subclass of :class:`SvcoverError` for problems the user can fix
(bad file, missing model, bad name). The CLI prints ``str(err)`` and exits non-zero; the
web UI shows it in a red box. Anything else is a bug and keeps its traceback.
"""


class SvcoverError(Exception):
    """A problem the user can act on; ``str(err)`` is one line naming the file and the problem."""


class InvalidNameError(SvcoverError, ValueError):
    """An experiment or file name that is not allowed (path traversal, bad characters)."""


class AudioDecodeError(SvcoverError):
    """A file that could not be decoded as audio."""


class MissingPretrainedError(SvcoverError, FileNotFoundError):
    """A pretrained weight file is not on disk; the message names the command that fetches it."""


class CheckpointError(SvcoverError):
    """A checkpoint that cannot be loaded safely (truncated, malicious, wrong model)."""


class NothingToDoError(SvcoverError):
    """The inputs contain nothing usable (no audio files, no voiced audio, ...)."""
