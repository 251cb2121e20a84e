"""Processes (procs.py): which process a temporary file is of, and the signal rules of workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from imagenette_build import procs


def _sigterm_disposition_after_worker_setup(client_pid: int, answer) -> None:
    procs.worker_setup(client_pid, started_by_client=True)
    answer.put("default" if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL else "inherited handler")


def test_forked_worker_gets_sigterms_default_action():
    """A forked worker (--backend multiprocessing) inherits the build's Python SIGTERM handler, which
    only runs when the worker's main thread runs Python code: a worker blocked on its pool's task
    queue lock, with the signal taken by its watch thread, never died, and the build waited for it
    forever (4 hangs in 30 runs). worker_setup restores the default action; fails without it."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    previous = signal.signal(signal.SIGTERM, lambda *_: None)  # as the CLI installs one
    try:
        answer = ctx.Queue()
        child = ctx.Process(target=_sigterm_disposition_after_worker_setup, args=(os.getpid(), answer))
        child.start()
        result = answer.get(timeout=20)
        child.join(timeout=20)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert result == "default"


def _dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)


def test_pid_alive():
    assert procs.pid_alive(os.getpid())
    assert procs.pid_alive(1)  # init: alive, whoever owns it (a PermissionError says so too)
    assert not procs.pid_alive(_dead_pid())


def test_a_temporary_file_is_stale_only_when_its_process_on_this_host_is_gone():
    dead = _dead_pid()
    assert procs.is_stale(procs.host(), dead)
    assert not procs.is_stale(procs.host(), os.getpid())
    assert not procs.is_stale("another.host", dead)  # a shared folder: not ours to judge


@pytest.mark.parametrize("name,cleaned", [("build-01.example.org", "build_01.example.org"),
                                          ("my box/é", "my_box_é"), ("", "host")])
def test_host_is_cleaned_so_that_a_tag_splits_back_into_host_and_pid(monkeypatch, name, cleaned):
    monkeypatch.setattr(procs.socket, "gethostname", lambda: name)
    procs.host.cache_clear()
    try:
        assert procs.host() == cleaned
        host, _, pid = procs.tag().rpartition("-")
        assert (host, pid) == (cleaned, str(os.getpid()))
    finally:
        procs.host.cache_clear()


def test_sigint_ignored_only_inside_the_block_and_only_when_wanted():
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with procs.sigint_ignored():
            assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        with procs.sigint_ignored(wanted=False):
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
