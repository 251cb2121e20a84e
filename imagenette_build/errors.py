"""The one exception type a user's mistake becomes, and the exit codes the CLI documents.

Exit codes (README "The commands"):
  0  success
  1  the data is wrong or the run failed on it: missing or unreadable source images, a write
     that failed (disk full, permission), a verify level that failed
  2  the command line or a file it names is wrong: bad option, bad manifest, no ImageNet layout
     where --imagenet points
  130 interrupted (Ctrl-C)
  141 the reader of stdout or stderr went away (`verify ... | head`): what a process killed by
      SIGPIPE gives (128 + 13); never 1, which says the data failed
  143 terminated (SIGTERM)
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_DATA = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_PIPE_CLOSED = 141  # 128 + SIGPIPE
EXIT_TERMINATED = 143  # 128 + SIGTERM


class UserError(Exception):
    """A problem the user can fix; printed as one line, never as a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE):
        super().__init__(message)
        self.exit_code = exit_code


class DataError(UserError):
    """The input data (not the command line) is wrong or incomplete: exit code 1."""

    def __init__(self, message: str):
        super().__init__(message, EXIT_DATA)


class PipeClosed(Exception):
    """The reader of stdout or stderr went away (`verify ... | head`): the run ends, exit
    EXIT_PIPE_CLOSED. Not an OSError, which a stage would take for a failed write of its own (a
    build said `<archive>: cannot write: Broken pipe`) and click's main for exit 1."""


def why(exc: OSError) -> str:
    """What went wrong with a file, in words (`strerror`: "No space left on device")."""
    return exc.strerror or str(exc)


def cannot(where, doing: str, exc: OSError, error: type[UserError] = None) -> UserError:
    """The one line every failed file operation becomes: `<where>: cannot <doing>: <why>`, a
    DataError (exit 1) unless `error` says otherwise. `raise cannot(path, "write", exc) from None`."""
    return (error or DataError)(f"{where}: cannot {doing}: {why(exc)}")
