"""Processes: every rule about signals, orphaned workers, and which process a temporary file is of.

- The main process turns SIGINT and SIGTERM into `Stopped` (`install_signal_handlers`), so every
  `finally` runs: workers are ended and temporary files removed; the CLI then prints one line.
- Worker processes ignore SIGINT (a terminal's Ctrl-C reaches the whole process group; the build
  ends its workers itself), take SIGTERM's default action, and end themselves when the process that
  started them is gone (`worker_setup`). They are started with SIGINT already ignored
  (`sigint_ignored`), so one still importing its modules prints no traceback.
- Temporary files carry their writer's host and pid (`host`, `tag`); a run removes only those of dead
  processes of its own host (`is_stale`), never those of a live process or of another machine
  writing to a shared folder.

Imports nothing of the package: everything else may use it.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from contextlib import contextmanager
from functools import lru_cache

# ---------------------------------------------------------------------------- whose file is it


@lru_cache(maxsize=None)
def host() -> str:
    """This machine's name, cleaned to letters, digits, '.' and '_' (a '-' would be ambiguous in
    `<host>-<pid>` tags)."""
    return "".join(c if c.isalnum() or c in "._" else "_" for c in socket.gethostname()) or "host"


def tag() -> str:
    """`<host>-<pid>`: what temporary names carry to say which process wrote them."""
    return f"{host()}-{os.getpid()}"


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def is_stale(file_host: str, pid: int) -> bool:
    """A temporary file of `file_host`/`pid` may be removed: its process, on this host, is gone."""
    return file_host == host() and not pid_alive(pid)


# ---------------------------------------------------------------------------- the main process


class Stopped(BaseException):
    """SIGINT or SIGTERM. A BaseException like KeyboardInterrupt (no `except Exception` takes it
    for an image error), but not one, so that click does not print its blank line for it."""


_stopped_by: list[int] = []  # the signal that stopped this run, once one has
_main_pid = os.getpid()
_default_thread_hook = threading.excepthook


def stopped_by() -> int | None:
    """The signal that stopped this run (SIGINT for a KeyboardInterrupt), or None."""
    return _stopped_by[0] if _stopped_by else None


def note_stopped(signum: int = signal.SIGINT) -> None:
    if not _stopped_by:
        _stopped_by.append(signum)


def _stop_on_signal(signum, _frame):
    """SIGINT and SIGTERM stop the main process with `Stopped`. A forked worker that inherited
    this handler just dies as it would have."""
    if os.getpid() != _main_pid:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    note_stopped(signum)
    raise Stopped()


def _quiet_after_stop(args) -> None:
    """Once interrupted, background threads (loky's executor manager, racing with the shutdown)
    may fail on their way out; that is not news for the user, who gets one line."""
    if _stopped_by:
        return
    _default_thread_hook(args)


def install_signal_handlers() -> None:
    global _main_pid
    if threading.current_thread() is not threading.main_thread():
        return
    _main_pid = os.getpid()
    signal.signal(signal.SIGINT, _stop_on_signal)
    signal.signal(signal.SIGTERM, _stop_on_signal)
    threading.excepthook = _quiet_after_stop
    # loky's resource tracker (a separate process, started with this environment) warns about
    # the semaphores it cleans up after workers were ended by an interrupt; the user already has
    # the one line that matters.
    quiet = "ignore::UserWarning:joblib.externals.loky.backend.resource_tracker"
    if quiet not in os.environ.get("PYTHONWARNINGS", ""):
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, (os.environ.get("PYTHONWARNINGS"), quiet)))


@contextmanager
def sigint_ignored(wanted: bool = True):
    """SIGINT ignored for the block, in the main thread (elsewhere, or where Python did not install
    the handler, nothing changes): processes started in it begin with SIGINT ignored."""
    before = signal.getsignal(signal.SIGINT)
    if not wanted or before is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


# ---------------------------------------------------------------------------- worker processes

_watchdog_lock = threading.Lock()
_watchdog_started = False


def worker_setup(client_pid: int, started_by_client: bool = False) -> None:
    """Once, in a worker process started by the build (loky, multiprocessing): ignore SIGINT, let
    SIGTERM kill at once (the default), and start a thread that ends the process when the build is
    gone (after a `kill -9` of the build its workers would otherwise stay idle for minutes). The
    build's own threads and remote workers are left alone.
    `started_by_client`: called as the initializer of a local worker process, which must be the
    build's child (it ends at once if the build is already gone)."""
    global _watchdog_started
    if started_by_client and os.getppid() != client_pid:
        os._exit(1)  # a local worker whose build was killed while it was starting
    if _watchdog_started or os.getpid() == client_pid or os.getppid() != client_pid:
        return
    with _watchdog_lock:
        if _watchdog_started:
            return
        _watchdog_started = True
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # A forked worker (--backend multiprocessing) inherits the build's Python SIGTERM handler,
        # which runs only when the worker's main thread next runs Python code. A pool ending its
        # workers holds their task queue's lock and sends SIGTERM: when the watch thread below took
        # the signal, the main thread stayed blocked on that lock and the build waited for it
        # forever. The default action needs no thread.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except ValueError:  # not the worker's main thread
        pass

    def watch() -> None:
        while os.getppid() == client_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="imagenette-build-parent-watch", daemon=True).start()


# --------------------------------------------------------------------------- how many workers


def default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


JOBS_PER_CORE = 4  # --jobs above this many per core only adds workers' memory (each holds its own decoder)


def max_jobs() -> int:
    return JOBS_PER_CORE * default_jobs()
