"""Typed errors. Each carries the exit code the CLI maps it to (see SPEC §5)."""

from __future__ import annotations

import errno
import os

EXIT_OK = 0
EXIT_STEP_FAILED = 1
EXIT_USAGE = 2
EXIT_MISMATCH = 3
EXIT_INTERRUPTED = 130


class GitcacheError(Exception):
    """An error the user can act on: one line of message, an optional hint."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ConfigError(GitcacheError):
    """gitcache.toml or the command line is wrong (exit 2)."""


class RepositoryError(GitcacheError):
    """Not a git repository, or the repository cannot be used (exit 2)."""


class RecordNotFound(GitcacheError):
    """A record id or step named on the command line has no record (exit 2)."""


class RemoteError(GitcacheError):
    """A git remote could not be reached or refused (exit 2)."""


class StepFailed(GitcacheError):
    """A step's command exited non-zero, or did not produce a declared output (exit 1)."""

    exit_code = EXIT_STEP_FAILED


class SignatureMismatch(GitcacheError):
    """`assert` mode found outputs that do not match their record (exit 3)."""

    exit_code = EXIT_MISMATCH


class UnsafeRecord(GitcacheError):
    """A record (usually fetched) would write outside the worktree or is malformed."""

    exit_code = EXIT_STEP_FAILED


class Interrupted(GitcacheError):
    """Ctrl-C (exit 130), SIGTERM (143) or SIGHUP (129) stopped the run; nothing was recorded."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self, message: str, hint: str | None = None, signum: int = 2) -> None:
        super().__init__(message, hint)
        self.exit_code = 128 + signum  # as a shell reports a process a signal ended


class DirtyWorktree(ConfigError):
    """`require_clean = true` and tracked files differ from HEAD (exit 2)."""


class HookError(GitcacheError):
    """Hooks cannot be installed or removed as asked (exit 2)."""


class WorktreeConflict(GitcacheError):
    """Writing would overwrite a worktree file whose content no record holds (exit 2)."""


class LockHeld(GitcacheError):
    """A lock is held by the gitcache that started this process (a step's command runs
    gitcache): waiting would never end (exit 1)."""

    exit_code = EXIT_STEP_FAILED


class UnreadableFile(GitcacheError):
    """A worktree file cannot be read as one blob: it keeps changing while gitcache reads
    it, or it is not a regular file (a fifo, a socket, a device) (exit 2)."""


class DiskFull(GitcacheError):
    """The file system holding the repository (or the user's quota there) is full: what
    was being stored is not recorded (exit 2)."""


# errno values that say "no room", whichever write hit them.
_NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def no_space(exc: BaseException) -> bool:
    """Whether an OSError says the disk or quota is full (libgit2's carry no errno: its
    message holds the system's text)."""
    if not isinstance(exc, OSError):
        return False
    if exc.errno is not None:
        return exc.errno in _NO_SPACE_ERRNOS
    return any(os.strerror(e) in str(exc) for e in _NO_SPACE_ERRNOS)


def disk_full(what: str, exc: OSError) -> DiskFull:
    """The one message for a write that found no room (`what`: what was being written)."""
    return DiskFull(
        f"{what}: {exc.strerror or _reason(exc)}; nothing was recorded",
        hint="free some disk space and run again",
    )


def _reason(exc: OSError) -> str:
    text = str(exc)
    return next((os.strerror(e) for e in _NO_SPACE_ERRNOS if os.strerror(e) in text), text)


class NotInStore(GitcacheError):
    """Outputs asked to be removed from the worktree are not safely in the store (exit 2)."""


def is_utf8(text: str) -> bool:
    """Whether text from the OS (a path, an argument, a variable: bytes that are not
    UTF-8 reach Python as lone surrogates) is UTF-8 text, which records, signatures and
    ref names hold."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def command_line_text(text: str, what: str) -> str:
    """A command-line value that goes into a signature, a ref name or a record: one
    UTF-8 can encode."""
    if not is_utf8(text):
        shown = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise ConfigError(f"{what} '{shown}': not valid UTF-8")
    return text
