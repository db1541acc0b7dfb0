"""Run one command and measure its wall time, CPU time and peak memory.

Peak memory is measured four ways, because no single one is right for a command that
starts worker processes:

- ``peak_tree_pss_bytes``: the largest sum of proportional set size (Pss from
  /proc/PID/smaps_rollup) over the command's process tree. PSS splits each shared page
  between the processes that map it, so forked workers are not counted twice. Reading
  smaps_rollup walks the page tables (about 8 ms per GiB of resident memory on the
  2 vCPU development machine). It is therefore read only as often as keeps that cost
  under ``pss_max_overhead`` of one CPU, and it can miss a short peak.
- ``peak_tree_rss_bytes``: the largest sum of VmRSS over the tree, sampled every
  ``poll_interval_s``. Pages shared between a parent and its forked workers count once
  per process, so this overstates the memory of a forking command.
- ``max_process_hwm_bytes``: the largest VmHWM (the kernel's peak RSS of one process)
  seen in the same samples. It is exact for every process that was alive at a sample
  after its peak, so it misses only a peak in the last interval before a process exits.
- ``rusage_maxrss_bytes``: ``ru_maxrss`` from ``wait4``, the peak RSS of the largest
  single process among the command and the descendants it waited for. Linux carries the
  forking harness's own peak RSS into the child at exec, so this is never below the
  harness's size (15 to 35 MiB for these scripts).

CPU time is the change of ``resource.getrusage(RUSAGE_CHILDREN)`` across the run, so it
covers the command and every descendant that was waited for.
"""

from __future__ import annotations

import collections
import os
import resource
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

STDERR_TAIL_CHARS = 2000


@dataclass
class Measurement:
    """Wall time, CPU time and peak memory of one finished command."""

    command: list[str]
    wall_s: float
    cpu_user_s: float
    cpu_system_s: float
    peak_tree_rss_bytes: int
    peak_tree_pss_bytes: int
    max_process_hwm_bytes: int
    rusage_maxrss_bytes: int
    max_processes: int
    samples: int
    returncode: int

    @property
    def cpu_s(self) -> float:
        return self.cpu_user_s + self.cpu_system_s

    def as_dict(self) -> dict:
        return {**asdict(self), "cpu_s": self.cpu_s}


class CommandFailed(RuntimeError):
    """A measured command exited with a non-zero status."""


def pinned_cpus(count: int | None) -> set[int] | None:
    """Return the first ``count`` CPUs this process may run on, or None for no pinning.

    Raises ValueError when fewer than ``count`` CPUs are available.
    """
    if count is None:
        return None
    available = sorted(os.sched_getaffinity(0))
    if count < 1 or count > len(available):
        raise ValueError(f"invalid CPU count {count}: this process may run on {len(available)} CPUs ({available})")
    return set(available[:count])


def _parent_pids() -> dict[int, int]:
    """Map every visible process id to its parent id, from /proc/PID/stat."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_bytes()
        except OSError:
            continue
        # The command name in brackets may contain spaces, so split after its closing bracket.
        fields = stat[stat.rfind(b")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
    return parents


def _process_tree(root_pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, parent in _parent_pids().items():
        children.setdefault(parent, []).append(pid)
    tree = [root_pid]
    index = 0
    while index < len(tree):
        tree.extend(children.get(tree[index], []))
        index += 1
    return tree


def _rss_and_hwm_bytes(pid: int) -> tuple[int, int]:
    """Return VmRSS and VmHWM of a process from /proc/PID/status, or zeros once it has exited."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith(b"VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return rss, hwm


def _pss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as rollup:
            for line in rollup:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0


def run_measured(
    command: list[str],
    *,
    cpus: set[int] | None = None,
    poll_interval_s: float = 0.1,
    pss_max_overhead: float = 0.02,
    timeout_s: float | None = None,
    env: dict[str, str] | None = None,
    stdout_path: Path | None = None,
    check: bool = True,
) -> Measurement:
    """Run ``command`` to the end and return its measurement.

    ``cpus`` pins the command and everything it starts to those CPU numbers. Standard
    output goes to ``stdout_path`` (or /dev/null). Raises ``CommandFailed`` with the tail
    of standard error when ``check`` is set and the command exits non-zero, and always
    when it runs longer than ``timeout_s``, after killing its process group.
    """
    preexec = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_tree_rss = 0
    peak_tree_pss = 0
    max_process_hwm = 0
    next_pss_sample = 0.0
    max_processes = 0
    samples = 0
    with open(stdout_path or os.devnull, "wb") as stdout:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, stdout=stdout, stderr=subprocess.PIPE, env=env, preexec_fn=preexec, start_new_session=True
        )
        waiter = _Waiter(process.pid)
        stderr_tail: collections.deque[bytes] = collections.deque(maxlen=64)
        reader = threading.Thread(target=lambda: stderr_tail.extend(iter(lambda: process.stderr.read(4096), b"")))
        waiter.start()
        reader.start()
        # Sample until the waiter thread has reaped the command, so the wall time does not
        # depend on the sampling interval.
        timed_out = False
        try:
            while not waiter.done.wait(poll_interval_s):
                if timeout_s is not None and time.perf_counter() - started > timeout_s:
                    timed_out = True
                    _kill_group(process.pid, waiter)
                    break
                tree = _process_tree(process.pid)
                memory = [_rss_and_hwm_bytes(member) for member in tree]
                peak_tree_rss = max(peak_tree_rss, sum(rss for rss, _hwm in memory))
                max_process_hwm = max([max_process_hwm, *(hwm for _rss, hwm in memory)])
                max_processes = max(max_processes, len(tree))
                samples += 1
                if time.perf_counter() >= next_pss_sample:
                    pss_started = time.perf_counter()
                    peak_tree_pss = max(peak_tree_pss, sum(_pss_bytes(member) for member in tree))
                    pss_cost = time.perf_counter() - pss_started
                    next_pss_sample = pss_started + pss_cost / pss_max_overhead
        except BaseException:
            # The harness is stopping (Ctrl-C, or SIGTERM through stop_on_sigterm). The
            # command runs in its own session, so without this it would outlive the harness.
            _kill_group(process.pid, waiter)
            raise
        # A descendant that outlives the command can hold standard error open, so do not wait forever.
        reader.join(timeout=10.0)
        if not reader.is_alive():
            process.stderr.close()
    stderr_text = b"".join(stderr_tail).decode("utf-8", "replace")[-STDERR_TAIL_CHARS:]
    if timed_out:
        raise CommandFailed(
            f"command timed out after {timeout_s:g} s and was killed: {' '.join(command)}\n{stderr_text}"
        )

    # wait4 reaped the child, so tell Popen its exit status instead of waiting again.
    process.returncode = os.waitstatus_to_exitcode(waiter.status)
    usage_after = resource.getrusage(resource.RUSAGE_CHILDREN)

    measurement = Measurement(
        command=command,
        wall_s=waiter.finished - started,
        cpu_user_s=usage_after.ru_utime - usage_before.ru_utime,
        cpu_system_s=usage_after.ru_stime - usage_before.ru_stime,
        peak_tree_rss_bytes=peak_tree_rss,
        peak_tree_pss_bytes=peak_tree_pss,
        max_process_hwm_bytes=max_process_hwm,
        # Linux reports ru_maxrss in KiB.
        rusage_maxrss_bytes=waiter.usage.ru_maxrss * 1024,
        max_processes=max_processes,
        samples=samples,
        returncode=process.returncode,
    )
    if check and process.returncode != 0:
        raise CommandFailed(f"command failed with exit status {process.returncode}: {' '.join(command)}\n{stderr_text}")
    return measurement


def stop_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so that a harness stopped by ``timeout`` or ``kill`` cleans up.

    Its ``finally`` blocks then stop the measured command and any server it started,
    and delete its temporary folders.
    """

    def exit_now(signal_number: int, _frame: object) -> None:
        raise SystemExit(128 + signal_number)

    signal.signal(signal.SIGTERM, exit_now)


def _kill_group(pid: int, waiter: _Waiter) -> None:
    """Terminate the process group that ``pid`` leads, then kill it if it is still there after 5 s."""
    for signal_number in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, signal_number)
        except ProcessLookupError:
            return
        if waiter.done.wait(5.0):
            return


class _Waiter(threading.Thread):
    """Reap one child with wait4 and keep its exit status, resource usage and end time."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.done = threading.Event()
        self.status = 0
        self.usage: resource.struct_rusage | None = None
        self.finished = 0.0

    def run(self) -> None:
        _pid, self.status, self.usage = os.wait4(self.pid, 0)
        self.finished = time.perf_counter()
        self.done.set()
