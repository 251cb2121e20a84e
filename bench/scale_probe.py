"""One build, timed from inside the building process, for bench/scale.py.

    python bench/scale_probe.py RESULT.json [imagenette-build arguments...]

Runs the command line in this process with a Progress that notes when planning ends (the first
image back from the workers), and samples this process's workers (their peak RSS from
/proc/<pid>/status VmHWM, their CPU time) every 0.2 s and once more at the end, while they are
still alive. Writes RESULT.json: wall, time to first image, the parent's CPU (all threads, and the
main thread alone over the resize phase) and peak RSS, the workers' peak RSS and CPU, and the
parent's and workers' bytes read (/proc/<pid>/io rchar). The product reads nothing of this: the
Progress is given to `cli.main`, as tests/paused_cli.py does.
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time

import psutil

from imagenette_build import cli
from imagenette_build.progress import Progress

ME = psutil.Process()
STARTED = ME.create_time()  # the process's own start, before the imports above


def _now() -> float:
    return time.time() - STARTED


class Workers:
    """The build's worker processes (children, any depth; not joblib's resource tracker), sampled,
    and the CPU time of this process's other threads (the archive's deflate, hash and write
    threads, the prefetcher; a thread that ends between samples loses its last 0.2 s)."""

    def __init__(self) -> None:
        self.seen: dict[int, dict] = {}
        self.threads: dict[int, float] = {}  # this process's threads: CPU seconds, by thread id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        for t in ME.threads():
            if t.id != ME.pid and t.id != threading.get_native_id():  # not the main thread, not this one
                self.threads[t.id] = t.user_time + t.system_time
        for child in ME.children(recursive=True):
            try:
                if "resource_tracker" in " ".join(child.cmdline()):
                    continue
                with open(f"/proc/{child.pid}/status") as f:
                    hwm = next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("VmHWM:"))
                cpu = child.cpu_times()
                rchar = child.io_counters().read_chars
            except (psutil.Error, OSError, StopIteration):
                continue
            self.seen[child.pid] = {"peak_rss": hwm, "cpu": cpu.user + cpu.system, "rchar": rchar}

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.sample()

    def __enter__(self) -> Workers:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()  # the workers outlive the build (joblib keeps them for reuse): their last figures


def timing(marks: dict):
    class Timing(Progress):
        def bar(self, desc, total=None, unit="it", unit_bytes=False, iterable=None):
            bar = super().bar(desc, total, unit, unit_bytes, iterable)
            if desc == "scan":
                marks["scan_start"] = _now()
                return _then_mark(bar, marks, "scan_end")
            if desc == "resize":
                update, done = bar.update, [0]

                def update_marked(n=1):
                    if done[0] == 0:
                        marks["first_image"] = _now()
                        marks["main_cpu_first"] = time.thread_time()
                        marks["cpu_first"] = _cpu()
                    done[0] += n
                    if total is not None and done[0] >= total:
                        marks["last_image"] = _now()
                        marks["main_cpu_last"] = time.thread_time()
                        marks["cpu_last"] = _cpu()
                    update(n)

                bar.update = update_marked
            return bar

        def stage(self, name):
            marks.setdefault(f"stage_{name}", _now())

    return Timing


def _then_mark(items, marks: dict, name: str):
    yield from items
    marks[name] = _now()


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    result_path, *args = sys.argv[1:]
    marks: dict = {"started": 0.0}
    code = 0
    with Workers() as workers:
        try:
            cli.main(args, progress=timing(marks))
        except SystemExit as exc:
            code = exc.code or 0
    marks["end"] = _now()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result = {
        "exit": code,
        "marks": marks,
        "parent_cpu": usage.ru_utime + usage.ru_stime,
        "parent_peak_rss": usage.ru_maxrss * 1024,
        "parent_rchar": ME.io_counters().read_chars,
        "workers": list(workers.seen.values()),
        "parent_threads_cpu": sorted(workers.threads.values(), reverse=True),  # besides the main thread
    }
    with open(result_path, "w") as f:
        json.dump(result, f, indent=1)
    sys.exit(code)


if __name__ == "__main__":
    main()
