"""Shared parts of the benchmark scripts: the wit command, its options, machine facts and result files."""

from __future__ import annotations

import bz2
import json
import os
import platform
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DEFAULT_WIT_COMMAND = str(REPO_ROOT / ".venv" / "bin" / "wit")
DEFAULT_RESULTS_DIR = BENCH_DIR / "results"
MB = 1_000_000
MIB = 1024 * 1024

_OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


@dataclass(frozen=True)
class WitBuild:
    """How to start `wit queries build` and which of its options this version has."""

    command: list[str]
    options: frozenset[str]

    @classmethod
    def probe(cls, command_line: str) -> WitBuild:
        """Read the options of `wit queries build` from its --help output.

        ``command_line`` is split like a shell would, so a prefix such as
        ``env PYTHONPATH=/some/tree`` works. Raises RuntimeError when --help fails.
        """
        command = shlex.split(command_line)
        help_command = [*command, "queries", "build", "--help"]
        completed = subprocess.run(help_command, capture_output=True, text=True)
        if completed.returncode != 0:
            raise RuntimeError(
                f"`{' '.join(help_command)}` failed with exit status {completed.returncode}; "
                f"check --wit-command:\n{completed.stderr[-2000:]}"
            )
        return cls(command=command, options=frozenset(_OPTION.findall(completed.stdout)))

    def has(self, option: str) -> bool:
        return option in self.options

    def build_command(self, dump: Path, out_dir: Path, *extra: str) -> list[str]:
        return [*self.command, "queries", "build", str(dump), "--out", str(out_dir), "--no-progress", *extra]


def xml_bytes_of(path: Path) -> int:
    """Return the size of the decompressed XML of a .bz2 dump (every stream), reading the whole file."""
    total = 0
    with bz2.open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            total += len(chunk)
    return total


def machine_facts(cpus: set[int] | None) -> dict:
    """Describe the machine, the Python and the checkout that produced a result."""
    model = ""
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_kib = 0
    with open("/proc/meminfo", encoding="utf-8") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
                break
    return {
        "cpu_model": model,
        "cpus_online": os.cpu_count(),
        "cpus_pinned": sorted(cpus) if cpus else None,
        "memory_gib": round(memory_kib / MIB, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "harness_python": sys.executable,
        "git": git_facts(),
        "load_average_at_start": os.getloadavg(),
    }


def git_facts() -> dict:
    """Return the checkout's commit and whether wit_builder/ differs from it, without touching the index."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, env=env)
    diff = subprocess.run(
        ["git", "diff", "--quiet", "HEAD", "--", "wit_builder"], cwd=REPO_ROOT, capture_output=True, env=env
    )
    return {"commit": head.stdout.strip() or None, "wit_builder_modified": diff.returncode == 1}


def write_result(results_dir: Path, name: str, result: dict) -> Path:
    """Write ``result`` as ``NAME-YYYYMMDDTHHMMSSZ.json`` in ``results_dir`` and return the path."""
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = results_dir / f"{name}-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return path

