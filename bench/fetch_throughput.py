"""Measure `wit fetch` against img2dataset on real photos served from 127.0.0.1 with latency and failures.

The URLs are the real image URLs of a url/caption Parquet file (columns URL and TEXT),
mapped onto ``image_server.py``. Each URL becomes ``http://127.0.0.1:PORT/<hash>.jpg``.
That path serves a photo chosen by the hash after a delay of 50 to 300 ms, or fails
(404, 500 or a connection reset) by a fixed plan per path. Both tools get the same URLs and
captions, in the same order, and so the same delays and failures:

- ``img2dataset``: img2dataset in its own venv, from a Parquet file with url and caption
  columns, writing webdataset shards;
- ``wit``: ``wit fetch --allow-private`` on the same rows, converted to one
  MatchedCandidate Parquet part.

Each tool runs ``--repeats`` times, alternating which tool starts a round, pinned to the
same ``--cpus`` CPUs, after one untimed warm-up run of each. The table gives samples
(input rows) per second from the median wall time, CPU seconds per sample, peak PSS of
the process tree, and each tool's status counts checked against the server's plan.

The CPU floor is the CPU time of decode, resize and JPEG encode alone, with wit's Pillow
settings, in this process, over the photos that the successful rows receive. With
``--opencv-floor`` the same is measured with OpenCV in the img2dataset venv, the codec
that img2dataset uses. wit's own ``resize_image`` is also timed in this process, which
separates the cost of its checks from the cost of its worker processes. The JSON result
(every run, machine facts, command lines) goes to bench/results/.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import logging
import math
import os
import re
import shlex
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import image_server
from harness import (
    BENCH_DIR,
    REPO_ROOT,
    ToolRun,
    add_run_arguments,
    check_run_arguments,
    machine_facts,
    markdown_table,
    reference_summary,
    run_rounds,
    summarize_runs,
    write_result,
)
from measure import CommandFailed, _process_tree, pinned_cpus, run_measured, stop_on_sigterm

logger = logging.getLogger("fetch_throughput")

TOOLS = ("wit", "img2dataset")
#: The one input, the rows of the URL file; harness functions group runs by input name.
INPUT_NAME = "url-captions"
DEFAULT_URLS = REPO_ROOT.parent / "shared" / "data" / "url-captions" / "test_10000.parquet"
DEFAULT_IMG2DATASET = BENCH_DIR / ".venv-img2dataset" / "bin" / "img2dataset"
IMAGE_SERVER_SCRIPT = BENCH_DIR / "image_server.py"
QUICK_ROWS = 1000
DEFAULT_TIMEOUT_S = 900.0
PROFILE_TOP = 25
#: Request timeout of both tools, img2dataset's default.
REQUEST_TIMEOUT_S = 10
#: The wit status and HTTP code that each planned outcome must produce.
EXPECTED_WIT_STATUS = {
    "ok": ("ok", 200),
    "not_found": ("http_error", 404),
    "server_error": ("http_error", 500),
    "reset": ("connection_error", None),
}
_OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


@dataclass(frozen=True)
class Sample:
    """One input row: the original URL and caption, its server path, wit key and planned outcome."""

    original_url: str
    caption: str
    path: str
    key: str
    outcome: str


@dataclass(frozen=True)
class BenchInput:
    """The rows of one benchmark, written in the form each tool reads."""

    samples: list[Sample]
    base_url: str
    img2dataset_parquet: Path
    wit_dir: Path

    def url(self, sample: Sample) -> str:
        return self.base_url + sample.path

    def outcome_counts(self) -> dict[str, int]:
        return dict(collections.Counter(sample.outcome for sample in self.samples))


class ImageServer:
    """``image_server.py`` in its own process group; ``cpu_s`` and ``requests`` read its usage."""

    def __init__(self, args: argparse.Namespace):
        command = [
            sys.executable, str(IMAGE_SERVER_SCRIPT), "--images", str(args.images), "--workers", str(args.server_workers),
            "--seed", str(args.seed), "--nice", str(args.server_nice),
        ]
        cpus = set(args.server_cpus) if args.server_cpus else None
        self.log_path = Path(tempfile.mkstemp(prefix="image-server-", suffix=".log")[1])
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=log, start_new_session=True,
                preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
            )
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"image server exited before it started: {self.log_path.read_text()[-2000:]}")
        started = json.loads(line)
        self.base_url = started["url"]
        self.pids = [started["pid"], *started["worker_pids"]]
        self.images = started["images"]
        self.command = command

    def cpu_s(self) -> float:
        """Return the user plus system CPU seconds that the server processes have used so far."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # utime and stime are fields 14 and 15 of /proc/PID/stat, 12 and 13 after the command name.
            total += int(fields[11]) + int(fields[12])
        return total / ticks

    def requests(self) -> dict[str, int]:
        """Return the server's request counts so far. Raises RuntimeError with the server's log when it does not respond."""
        try:
            with urllib.request.urlopen(self.base_url + "/__stats", timeout=10) as response:
                return json.loads(response.read())
        except OSError as error:
            raise RuntimeError(
                f"image server at {self.base_url} did not return its counts ({error}); its log:\n{self.log_path.read_text()[-2000:]}"
            ) from error

    def close(self) -> None:
        """Stop the server and remove its log, after logging the log's tail if the server failed."""
        if self.process.poll() not in (None, 0):
            logger.error("image server exited with status %s: %s", self.process.returncode, self.log_path.read_text()[-2000:])
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()
        self.log_path.unlink(missing_ok=True)


def load_samples(urls_path: Path, rows: int, seed: int, rates: image_server.FailureRates) -> list[Sample]:
    """Read the first ``rows`` URL and TEXT pairs and plan each one's outcome.

    The keys stay empty until ``write_inputs`` gets the server's port, which is part of wit's key.
    """
    import pyarrow.parquet as pq

    table = pq.read_table(urls_path, columns=["URL", "TEXT"])
    if table.num_rows < rows:
        raise ValueError(f"{urls_path} has {table.num_rows} rows, fewer than --rows {rows}")
    samples = []
    for url, text in zip(table.column("URL").to_pylist()[:rows], table.column("TEXT").to_pylist()[:rows]):
        path = image_server.url_path(url)
        plan = image_server.plan_for(path, seed, 0.0, 0.0, rates)
        samples.append(Sample(url, text or "", path, "", plan.outcome))
    return samples


def write_inputs(samples: list[Sample], base_url: str, folder: Path, part_rows: int) -> BenchInput:
    """Write img2dataset's url/caption Parquet file and wit's MatchedCandidate parts of ``part_rows`` rows for ``base_url``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from wit_builder.parquet import write_records
    from wit_builder.records import MatchedCandidate, candidate_id

    keyed = [
        Sample(sample.original_url, sample.caption, sample.path, candidate_id(base_url + sample.path, sample.caption), sample.outcome)
        for sample in samples
    ]
    urls = [base_url + sample.path for sample in keyed]
    img2dataset_parquet = folder / "urls.parquet"
    pq.write_table(pa.table({"url": urls, "caption": [sample.caption for sample in keyed]}), img2dataset_parquet)

    wit_dir = folder / "wit-input"
    candidates = [
        MatchedCandidate(
            candidate_id=sample.key,
            url=url,
            text=sample.caption,
            text_source="alt",
            page_url="",
            source="url-captions",
            query_ids=[0],
        )
        for sample, url in zip(keyed, urls)
    ]
    for part, start in enumerate(range(0, len(candidates), part_rows)):
        write_records(wit_dir / f"part-{part:05d}.parquet", candidates[start : start + part_rows], MatchedCandidate)
    return BenchInput(keyed, base_url, img2dataset_parquet, wit_dir)


def default_shard_rows(rows: int, processes: int) -> int:
    """Return img2dataset's shard size that gives each process one shard."""
    return math.ceil(rows / processes)


def busy_cpu_s() -> float:
    """Return the CPU seconds that the whole machine has spent busy (not idle or waiting for I/O), from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as stat:
        values = [int(value) for value in stat.readline().split()[1:9]]
    # user nice system idle iowait irq softirq steal
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


class FetchBench:
    """Builds each tool's command line, runs it on one input and reads its outputs."""

    def __init__(self, args: argparse.Namespace, server: ImageServer, cpus: set[int] | None):
        self.args = args
        self.server = server
        self.cpus = cpus
        self.wit_command = shlex.split(args.wit_command)
        self.wit_options = self._wit_options()

    def _wit_options(self) -> frozenset[str]:
        help_command = [*self.wit_command, "fetch", "--help"]
        completed = subprocess.run(help_command, capture_output=True, text=True)
        if completed.returncode != 0:
            raise RuntimeError(f"`{' '.join(help_command)}` failed: {completed.stderr[-2000:]}; check --wit-command")
        return frozenset(_OPTION.findall(completed.stdout))

    def command(self, tool: str, bench_input: BenchInput, out_dir: Path) -> list[str]:
        args = self.args
        if tool == "wit":
            options = {
                "--allow-private": None,
                "--image-size": args.image_size,
                "--resize-mode": args.resize_mode,
                "--jpeg-quality": args.jpeg_quality,
                "--processes": args.processes,
                "--concurrency": args.concurrency,
                # Every URL is on one host, and img2dataset has no per-host limit or spacing.
                "--per-host": args.concurrency,
                "--host-delay": 0,
                # img2dataset's default is no retries.
                "--retries": 0,
                "--timeout": REQUEST_TIMEOUT_S,
            }
            command = [*self.wit_command, "fetch", str(bench_input.wit_dir), "--out", str(out_dir)]
            for option, value in options.items():
                if option not in self.wit_options:
                    logger.warning("`wit fetch` has no %s option: it is left out", option)
                    continue
                command += [option] if value is None else [option, str(value)]
            return command + shlex.split(args.wit_args)
        if tool == "img2dataset":
            shard_rows = args.shard_rows or default_shard_rows(len(bench_input.samples), args.processes)
            return [
                str(args.img2dataset), "--url_list", str(bench_input.img2dataset_parquet), "--input_format", "parquet",
                "--url_col", "url", "--caption_col", "caption", "--output_format", "webdataset",
                "--output_folder", str(out_dir), "--image_size", str(args.image_size), "--resize_mode", args.resize_mode,
                "--encode_format", "jpg", "--encode_quality", str(args.jpeg_quality),
                "--processes_count", str(args.processes), "--thread_count", str(args.thread_count),
                "--number_sample_per_shard", str(shard_rows), "--timeout", str(REQUEST_TIMEOUT_S), "--retries", "0",
                "--enable_wandb", "False", *shlex.split(args.img2dataset_args),
            ]
        raise ValueError(f"unknown tool {tool!r}: expected one of {TOOLS}")

    def environment(self, tool: str) -> dict[str, str]:
        env = dict(os.environ)
        if tool == "img2dataset":
            # Without it, albumentations requests its latest version from PyPI at import.
            env["NO_ALBUMENTATIONS_UPDATE"] = "1"
        return env

    def run(self, tool: str, bench_input: BenchInput, repeat: int) -> ToolRun:
        """Run ``tool`` once; a failed command is recorded in ``error``, not raised.

        ``reported`` has what the outputs contain, with the server's CPU time and requests
        during the run and ``other_cpu_s``, the CPU time of every other process of the
        machine (this harness included).
        """
        with tempfile.TemporaryDirectory(prefix="wit-bench-fetch-") as scratch:
            out_dir = Path(scratch) / "out"
            command = self.command(tool, bench_input, out_dir)
            load = os.getloadavg()
            cpu_before = self.server.cpu_s()
            requests_before = self.server.requests()
            busy_before = busy_cpu_s()
            measurement = None
            report: dict = {}
            error = None
            try:
                measurement = run_measured(
                    command, cpus=self.cpus, timeout_s=self.args.timeout, env=self.environment(tool),
                    stdout_path=Path(scratch) / "stdout",
                )
                report = read_wit_output(out_dir, bench_input) if tool == "wit" else read_img2dataset_output(out_dir, bench_input)
            except (CommandFailed, OSError, ValueError, KeyError) as failure:
                error = str(failure)
                logger.error("%s run %d failed: %s", tool, repeat + 1, error)
            busy = busy_cpu_s() - busy_before
            server_cpu = self.server.cpu_s() - cpu_before
            requests_after = self.server.requests()
            report["rows_in"] = len(bench_input.samples)
            report["server_cpu_s"] = round(server_cpu, 3)
            report["server_requests"] = {name: requests_after[name] - requests_before.get(name, 0) for name in requests_after}
            report["other_cpu_s"] = round(busy - server_cpu - (measurement.cpu_s if measurement else 0.0), 3)
            return ToolRun(INPUT_NAME, tool, repeat, measurement, report, error, load)


def read_wit_output(out_dir: Path, bench_input: BenchInput) -> dict:
    """Count wit's statuses and check that every input row has exactly one result that matches the server's plan."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    parts = sorted(out_dir.glob("part-*.parquet"))
    table = pq.ParquetDataset(parts).read(columns=["key", "status", "http_status", "image"]) if parts else None
    keys = table.column("key").to_pylist() if table is not None else []
    statuses = table.column("status").to_pylist() if table is not None else []
    http_statuses = table.column("http_status").to_pylist() if table is not None else []
    expected_keys = [sample.key for sample in bench_input.samples]

    mismatches = []
    for sample, status, http_status in zip(bench_input.samples, statuses, http_statuses):
        expected_status, expected_http = EXPECTED_WIT_STATUS[sample.outcome]
        if status != expected_status or (expected_http is not None and http_status != expected_http):
            mismatches.append({"key": sample.key, "planned": sample.outcome, "status": status, "http_status": http_status})
    image_bytes = pc.sum(pc.binary_length(table.column("image"))).as_py() if table is not None else 0
    ok = statuses.count("ok")
    stats_path = out_dir / "stats.json"
    stats = json.loads(stats_path.read_text(encoding="utf-8")) if stats_path.exists() else {}
    return {
        "rows": len(keys),
        "ok": ok,
        "statuses": dict(collections.Counter(statuses)),
        "all_rows_accounted": keys == expected_keys,
        "plan_mismatches": len(mismatches),
        "plan_mismatch_examples": mismatches[:5],
        "mean_jpeg_bytes": round(image_bytes / ok) if ok else None,
        "elapsed_s": stats.get("elapsed_s"),
        "requests": stats.get("requests"),
        "robots_requests": stats.get("robots_requests"),
    }


def classify_img2dataset_error(message: str | None) -> str:
    """Map an img2dataset error message to a planned outcome name, or "other"."""
    if message is None:
        return "ok"
    if "404" in message:
        return "not_found"
    if "500" in message:
        return "server_error"
    if "reset" in message.lower() or "closed connection" in message.lower():
        return "reset"
    return "other"


def read_img2dataset_output(out_dir: Path, bench_input: BenchInput) -> dict:
    """Sum img2dataset's shard statistics and compare each row's status with the server's plan."""
    import pyarrow.parquet as pq

    shard_stats = [json.loads(path.read_text(encoding="utf-8")) for path in sorted(out_dir.glob("*_stats.json"))]
    totals = {name: sum(stats[name] for stats in shard_stats) for name in ("count", "successes", "failed_to_download", "failed_to_resize")}
    status_dict: collections.Counter[str] = collections.Counter()
    for stats in shard_stats:
        status_dict.update(stats.get("status_dict", {}).get("counter", {}))

    planned = {bench_input.url(sample): sample.outcome for sample in bench_input.samples}
    mismatches = []
    rows = 0
    for path in sorted(out_dir.glob("*.parquet")):
        table = pq.read_table(path, columns=["url", "status", "error_message"])
        for url, status, message in zip(*(table.column(name).to_pylist() for name in ("url", "status", "error_message"))):
            rows += 1
            got = "ok" if status == "success" else classify_img2dataset_error(message or status)
            if got != planned.get(url):
                mismatches.append({"url": url, "planned": planned.get(url), "status": status, "error": message})

    jpeg_bytes = 0
    jpegs = 0
    for path in sorted(out_dir.glob("*.tar")):
        with tarfile.open(path) as archive:
            for member in archive:
                if member.name.endswith(".jpg"):
                    jpeg_bytes += member.size
                    jpegs += 1
    starts = [stats["start_time"] for stats in shard_stats]
    ends = [stats["end_time"] for stats in shard_stats]
    return {
        "rows": rows,
        "ok": totals["successes"],
        "statuses": {"success": totals["successes"], "failed_to_download": totals["failed_to_download"],
                     "failed_to_resize": totals["failed_to_resize"]},
        "errors": dict(status_dict.most_common(10)),
        "all_rows_accounted": totals["count"] == len(bench_input.samples) and rows == len(bench_input.samples),
        "plan_mismatches": len(mismatches),
        "plan_mismatch_examples": mismatches[:5],
        "mean_jpeg_bytes": round(jpeg_bytes / jpegs) if jpegs else None,
        "elapsed_s": round(max(ends) - min(starts), 3) if shard_stats else None,
        "shards": len(shard_stats),
    }


def served_images(bench_input: BenchInput, image_dir: Path) -> list[bytes]:
    """Return the photo bytes that the server sends for every row planned to succeed, in row order."""
    paths = image_server.list_images(image_dir)
    return [
        paths[image_server.image_index(sample.path, len(paths))].read_bytes()
        for sample in bench_input.samples
        if sample.outcome == "ok"
    ]


def pillow_resize(data: bytes, size: int, mode: str, quality: int, steps: collections.Counter[str] | None = None) -> bytes:
    """Decode, resize and JPEG-encode one image the way wit's resizer does (Pillow, LANCZOS, DCT scaling).

    ``steps``, when given, accumulates the CPU seconds of the decode, resize and encode steps.
    """
    from PIL import Image

    clock = time.process_time
    started = clock()
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
        scale = size / (max(width, height) if mode == "border" else min(width, height))
        if image.format == "JPEG" and scale < 1.0:
            image.draft(None, (math.ceil(width * scale), math.ceil(height * scale)))
        image = image.convert("RGB")
    decoded = clock()
    width, height = image.size
    if (width <= height) == (mode != "border"):
        new_size = (size, max(1, round(height * size / width)))
    else:
        new_size = (max(1, round(width * size / height)), size)
    image = image.resize(new_size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if mode == "center_crop":
        left, top = (image.width - size) // 2, (image.height - size) // 2
        image = image.crop((left, top, left + size, top + size))
    elif mode == "border":
        canvas = Image.new("RGB", (size, size), (255, 255, 255))
        canvas.paste(image, ((size - image.width) // 2, (size - image.height) // 2))
        image = canvas
    resized = clock()
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    if steps is not None:
        steps["decode"] += decoded - started
        steps["resize"] += resized - decoded
        steps["encode"] += clock() - resized
    return buffer.getvalue()


def timing_result(codec: str, images: int, cpu_times: list[float], wall_times: list[float] | None = None, **extra: object) -> dict:
    """Summarize repeated CPU timings of the image work: the median, every value and the median per image."""
    cpu = statistics.median(cpu_times)
    result = {
        "codec": codec,
        "images": images,
        "cpu_s_median": round(cpu, 3),
        "cpu_s_all": [round(value, 3) for value in cpu_times],
        "cpu_ms_per_image": round(1000 * cpu / images, 3) if images else None,
    }
    if wall_times:
        result["wall_s_median"] = round(statistics.median(wall_times), 3)
    return {**result, **extra}


def measure_pillow_floor(images: list[bytes], args: argparse.Namespace) -> dict:
    """Time decode, resize and encode of ``images`` in this process, ``args.repeats`` times; return the median."""
    cpu_times = []
    wall_times = []
    encoded = 0
    for _repeat in range(args.repeats):
        wall_started = time.perf_counter()
        cpu_started = time.process_time()
        encoded = sum(len(pillow_resize(data, args.image_size, args.resize_mode, args.jpeg_quality)) for data in images)
        cpu_times.append(time.process_time() - cpu_started)
        wall_times.append(time.perf_counter() - wall_started)
    # One more pass with a clock read around each step, kept apart from the timed passes.
    steps: collections.Counter[str] = collections.Counter()
    for data in images:
        pillow_resize(data, args.image_size, args.resize_mode, args.jpeg_quality, steps)
    return timing_result(
        "Pillow", len(images), cpu_times, wall_times,
        step_ms_per_image={name: round(1000 * value / len(images), 3) for name, value in steps.items()} if images else {},
        mean_jpeg_bytes=round(encoded / len(images)) if images else None,
    )


def _pillow_floor_cpu_s(images: list[bytes], size: int, mode: str, quality: int) -> float:
    started = time.process_time()
    for data in images:
        pillow_resize(data, size, mode, quality)
    return time.process_time() - started


def measure_parallel_pillow_floor(images: list[bytes], args: argparse.Namespace, processes: int) -> dict:
    """Time the Pillow floor in ``processes`` forked processes at once, each on an equal share of ``images``.

    The tools keep every CPU busy, and two busy CPUs can each run slower than one alone
    (shared caches and memory bandwidth, and possibly shared physical cores under the
    hypervisor), so this is the floor under the same load. Returns the sum of the
    processes' CPU times (median of ``args.repeats``).
    """
    import concurrent.futures
    import multiprocessing

    shares = [images[index::processes] for index in range(processes)]
    cpu_times = []
    wall_times = []
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(processes, mp_context=context) as pool:
        for _repeat in range(args.repeats):
            started = time.perf_counter()
            futures = [
                pool.submit(_pillow_floor_cpu_s, share, args.image_size, args.resize_mode, args.jpeg_quality) for share in shares
            ]
            cpu_times.append(sum(future.result() for future in futures))
            wall_times.append(time.perf_counter() - started)
    return timing_result(f"Pillow, {processes} processes", len(images), cpu_times, wall_times)


def measure_wit_resizer(images: list[bytes], args: argparse.Namespace) -> dict:
    """Time wit's own ``resize_image`` on ``images`` in this process, without its worker processes.

    The difference to the Pillow floor is the cost of wit's checks (format sniffing, size
    limit, EXIF orientation, truncation and colour handling). The difference between this
    and the decoder processes' CPU time is the cost of running it in worker processes.
    """
    from wit_builder.fetch.resizer import ResizeOptions, configure_worker, resize_image

    options = ResizeOptions(image_size=args.image_size, resize_mode=args.resize_mode, jpeg_quality=args.jpeg_quality)
    configure_worker(options.max_pixels)
    cpu_times = []
    encoded = 0
    for _repeat in range(args.repeats):
        started = time.process_time()
        encoded = sum(len(resize_image(data, "image/jpeg", options).jpeg or b"") for data in images)
        cpu_times.append(time.process_time() - started)
    return timing_result("wit resize_image", len(images), cpu_times, mean_jpeg_bytes=round(encoded / len(images)) if images else None)


def measure_wit_pool(images: list[bytes], args: argparse.Namespace) -> dict:
    """Time wit's ``DecodePool`` on ``images``: ``resize_image`` in worker processes, fed as wit's fetcher feeds it.

    As in ``wit fetch``, tasks of one event loop call ``resize`` with up to
    ``DECODE_QUEUE_PER_PROCESS`` images per process waiting, so each image and its result
    cross a pipe. The CPU time is this process's (the event loop) plus that of the
    reaped workers, start-up included. Minus ``measure_wit_resizer``'s time,
    it is the cost of the worker processes without any HTTP.
    """
    import asyncio
    import resource

    from wit_builder.fetch.fetcher import DECODE_QUEUE_PER_PROCESS
    from wit_builder.fetch.pool import DecodePool
    from wit_builder.fetch.resizer import ResizeOptions
    from wit_builder.net import event_loop

    async def feed(pool: DecodePool) -> None:
        slots = asyncio.Semaphore(pool.processes * DECODE_QUEUE_PER_PROCESS)

        async def one(data: bytes) -> None:
            async with slots:
                await pool.resize(data, "image/jpeg", options)

        await asyncio.gather(*(one(data) for data in images))

    options = ResizeOptions(image_size=args.image_size, resize_mode=args.resize_mode, jpeg_quality=args.jpeg_quality)
    cpu_times = []
    wall_times = []
    for _repeat in range(args.repeats):
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        own_before = time.process_time()
        started = time.perf_counter()
        with DecodePool(args.processes, options.max_pixels) as pool:
            event_loop.run(feed(pool))
        wall_times.append(time.perf_counter() - started)
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        children = (children_after.ru_utime - children_before.ru_utime) + (children_after.ru_stime - children_before.ru_stime)
        cpu_times.append(time.process_time() - own_before + children)
    return timing_result("wit DecodePool", len(images), cpu_times, wall_times)


#: Run by the img2dataset venv's Python: the same work with OpenCV, as img2dataset's resizer does it
#: for keep_ratio (cv2.imdecode, cv2.resize to the shortest side, cv2.imencode). Reads the image
#: paths from standard input and prints a JSON line.
OPENCV_FLOOR_SCRIPT = """
import json, sys, time
import cv2, numpy as np
size, quality, repeats = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
cv2.setNumThreads(1)
images = [open(path, "rb").read() for path in sys.stdin.read().split("\\n") if path]
cpu_times = []
for _ in range(repeats):
    started = time.process_time()
    encoded = 0
    for data in images:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        height, width = image.shape[:2]
        scale = size / min(width, height)
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LANCZOS4
        image = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=interpolation)
        encoded += len(cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), quality])[1])
    cpu_times.append(time.process_time() - started)
print(json.dumps({"cpu_s_all": cpu_times, "images": len(images), "encoded_bytes": encoded}))
"""


def measure_opencv_floor(bench_input: BenchInput, args: argparse.Namespace) -> dict:
    """Time the OpenCV version of the floor in the img2dataset venv (keep_ratio only)."""
    python = args.img2dataset.parent / "python"
    paths = image_server.list_images(args.images)
    listing = "\n".join(
        str(paths[image_server.image_index(sample.path, len(paths))]) for sample in bench_input.samples if sample.outcome == "ok"
    )
    completed = subprocess.run(
        [str(python), "-c", OPENCV_FLOOR_SCRIPT, str(args.image_size), str(args.jpeg_quality), str(args.repeats)],
        input=listing, capture_output=True, text=True, check=True,
    )
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    images = result["images"]
    return timing_result("OpenCV", images, result["cpu_s_all"], mean_jpeg_bytes=round(result["encoded_bytes"] / images) if images else None)


def summarize(runs: list[ToolRun]) -> dict:
    """Combine the runs of one tool with ``summarize_runs`` and add the per-sample figures and the server's usage."""
    finished = [run for run in runs if run.error is None]
    summary = summarize_runs(finished or runs, INPUT_NAME)
    if "error" in summary:
        return summary
    rows = finished[0].reported["rows_in"]
    wall = summary["wall_s_median"]
    cpu = summary["cpu_s_median"]
    ok = statistics.median(run.reported["ok"] for run in finished)
    summary.update(
        failed_runs=len(runs) - len(finished),
        rows=rows,
        samples_per_s=round(rows / wall, 1),
        ok_per_s=round(ok / wall, 1),
        cpu_ms_per_sample=round(1000 * cpu / rows, 3),
        cpu_ms_per_ok_sample=round(1000 * cpu / ok, 3) if ok else None,
        server_cpu_s_median=round(statistics.median(run.reported["server_cpu_s"] for run in finished), 3),
        other_cpu_s_median=round(statistics.median(run.reported["other_cpu_s"] for run in finished), 3),
    )
    return summary


#: Table labels of the timings of wit's own code, which are not floors.
WIT_STEP_LABELS = {"wit resize_image": "wit resize_image in-process", "wit DecodePool": "wit DecodePool, no HTTP"}
TABLE_HEADER = (
    "tool", "rows", "wall s (median)", "samples/s", "ok/s", "vs img2dataset", "CPU s", "CPU ms/sample", "CPU ms/ok sample",
    "peak PSS MiB", "statuses", "rows accounted", "plan mismatches", "server CPU s", "other CPU s", "load before",
)


def result_table(summaries: list[dict], floors: list[dict]) -> str:
    """Render the summaries, wit's ratios to img2dataset, and the CPU floors, as Markdown."""
    reference = reference_summary(summaries, INPUT_NAME, "img2dataset")
    rows = []
    for summary in summaries:
        if "error" in summary:
            rows.append([summary["tool"], f"failed: {summary['error'][:200]}"])
            continue
        relative = f"{reference['wall_s_median'] / summary['wall_s_median']:.2f}x" if reference else ""
        reported = summary["reported"]
        statuses = ", ".join(f"{name} {count:,}" for name, count in sorted(reported["statuses"].items(), key=lambda item: -item[1]))
        load = summary.get("load_1min_before", {"min": 0.0, "max": 0.0})
        rows.append([
            summary["tool"], f"{summary['rows']:,}", f"{summary['wall_s_median']:.2f}", f"{summary['samples_per_s']:,.0f}",
            f"{summary['ok_per_s']:,.0f}", relative, f"{summary['cpu_s_median']:.2f}", f"{summary['cpu_ms_per_sample']:.2f}",
            f"{summary['cpu_ms_per_ok_sample']:.2f}", f"{summary['peak_tree_pss_mib']:.0f}", statuses,
            "yes" if reported["all_rows_accounted"] else "NO", str(reported["plan_mismatches"]),
            f"{summary['server_cpu_s_median']:.2f}", f"{summary['other_cpu_s_median']:.2f}", f"{load['min']:.1f}-{load['max']:.1f}",
        ])
    for floor in floors:
        if "error" not in floor:
            label = WIT_STEP_LABELS.get(floor["codec"], f"floor ({floor['codec']})")
            rows.append([
                label, f"{floor['images']:,} images", "", "", "", "", f"{floor['cpu_s_median']:.2f}", "",
                f"{floor['cpu_ms_per_image']:.2f}",
            ])
    return markdown_table(TABLE_HEADER, rows)


def goal_lines(summaries: list[dict], floors: list[dict]) -> list[str]:
    """State the project's goals for wit against the measured figures."""
    wit = next((s for s in summaries if s["tool"] == "wit" and "error" not in s), None)
    peer = next((s for s in summaries if s["tool"] == "img2dataset" and "error" not in s), None)
    floor = next((f for f in floors if f.get("codec") == "Pillow"), None)
    if wit is None or peer is None:
        return []
    lines = [
        f"speed: wit {wit['samples_per_s']:.0f} samples/s = {wit['samples_per_s'] / peer['samples_per_s']:.2f}x "
        f"img2dataset (goal 2x)",
        f"memory: wit {wit['peak_tree_pss_mib']:.0f} MiB peak PSS against img2dataset {peer['peak_tree_pss_mib']:.0f} MiB "
        f"(goal: no more)",
    ]
    if floor is not None and wit["cpu_ms_per_ok_sample"]:
        lines.append(
            f"CPU: wit {wit['cpu_ms_per_ok_sample']:.2f} ms per ok sample = "
            f"{wit['cpu_ms_per_ok_sample'] / floor['cpu_ms_per_image']:.2f}x the Pillow floor of "
            f"{floor['cpu_ms_per_image']:.2f} ms (goal 1.3x)"
        )
    return lines


def profile_wit(bench: FetchBench, bench_input: BenchInput, results_dir: Path) -> dict:
    """Run wit once more under cProfile (the parent process only) and return its top functions by own time."""
    import pstats

    script = Path(bench.wit_command[-1])
    first_line = script.read_text(encoding="utf-8").splitlines()[0]
    if not first_line.startswith("#!"):
        raise ValueError(f"{script} has no #! line; --profile needs a wit entry script")
    profile_path = results_dir / f"fetch_throughput-wit-{time.strftime('%Y%m%dT%H%M%S')}.prof"
    results_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wit-bench-fetch-") as scratch:
        command = bench.command("wit", bench_input, Path(scratch) / "out")
        profiled = [first_line[2:].strip(), "-m", "cProfile", "-o", str(profile_path), str(script), *command[len(bench.wit_command):]]
        preexec = (lambda: os.sched_setaffinity(0, bench.cpus)) if bench.cpus else None
        # `python -m` puts the working folder first on sys.path, so run from the scratch folder.
        completed = subprocess.run(profiled, cwd=scratch, capture_output=True, text=True, preexec_fn=preexec, timeout=bench.args.timeout)
        if completed.returncode != 0:
            raise CommandFailed(f"profiled wit failed with exit status {completed.returncode}:\n{completed.stderr[-2000:]}")
    stats = pstats.Stats(str(profile_path))
    rows = [
        {"function": f"{filename}:{line}({function})", "calls": calls, "own_s": round(own_s, 3), "cumulative_s": round(cumulative_s, 3)}
        for (filename, line, function), (_primitive, calls, own_s, cumulative_s, _callers) in stats.stats.items()
    ]
    rows.sort(key=lambda row: row["own_s"], reverse=True)
    return {"profile": str(profile_path), "total_s": round(stats.total_tt, 3), "top_by_own_time": rows[:PROFILE_TOP]}


def process_cpu_s(pid: int) -> tuple[float, str] | None:
    """Return the user plus system CPU seconds and the command line of a process, or None once it has exited."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), command_line


def wit_cpu_by_process(bench: FetchBench, bench_input: BenchInput, interval_s: float = 0.2) -> dict:
    """Run wit once more and split its CPU time between the parent and the decoder processes.

    Each process's CPU time is the last value read from /proc every ``interval_s``, so
    up to one interval before each process exits is missing.
    """
    last_seen: dict[int, tuple[float, str]] = {}
    with tempfile.TemporaryDirectory(prefix="wit-bench-fetch-") as scratch:
        command = bench.command("wit", bench_input, Path(scratch) / "out")
        preexec = (lambda: os.sched_setaffinity(0, bench.cpus)) if bench.cpus else None
        started = time.perf_counter()
        with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=preexec) as process:
            while process.poll() is None:
                for pid in _process_tree(process.pid):
                    usage = process_cpu_s(pid)
                    if usage is not None:
                        last_seen[pid] = usage
                time.sleep(interval_s)
        wall = time.perf_counter() - started
    roles: collections.Counter[str] = collections.Counter()
    for pid, (cpu, command_line) in last_seen.items():
        if pid == process.pid:
            roles["parent"] += cpu
        elif "spawn_main" in command_line:
            roles["decoder"] += cpu
        else:
            roles["other child"] += cpu
    return {"wall_s": round(wall, 3), "cpu_s": {role: round(cpu, 3) for role, cpu in roles.items()}, "returncode": process.returncode}


def profile_wit_tree(bench: FetchBench, bench_input: BenchInput, results_dir: Path, py_spy: Path) -> dict:
    """Run wit once more under py-spy, sampling the parent and its decoder processes; return the top frames of each.

    py-spy skips threads that it detects as idle, but it still counts waits in select and
    on pipes and time spent runnable on a busy machine, so the samples are closer to wall
    time than to CPU time. ``wit_cpu_by_process`` measures the CPU split. Frames are counted by own samples (the innermost frame) and inclusive samples (once
    per stack that contains them).
    """
    raw_path = results_dir / f"fetch_throughput-wit-py-spy-{time.strftime('%Y%m%dT%H%M%S')}.txt"
    results_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wit-bench-fetch-") as scratch:
        command = bench.command("wit", bench_input, Path(scratch) / "out")
        profiled = [str(py_spy), "record", "--format", "raw", "--rate", "200", "--subprocesses", "-o", str(raw_path), "--", *command]
        preexec = (lambda: os.sched_setaffinity(0, bench.cpus)) if bench.cpus else None
        completed = subprocess.run(profiled, capture_output=True, text=True, preexec_fn=preexec, timeout=bench.args.timeout)
        if completed.returncode != 0:
            raise CommandFailed(f"py-spy run of wit failed with exit status {completed.returncode}:\n{completed.stderr[-2000:]}")

    own: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    inclusive: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    totals: collections.Counter[str] = collections.Counter()
    for line in raw_path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack.startswith("process ") or not count_text.isdigit():
            continue
        # A child's stack starts with one "process PID:COMMAND" element per ancestor, then its own.
        elements = stack.split(";")
        processes = [element for element in elements if element.startswith("process ")]
        frames = elements[len(processes):] or ["(no Python frame)"]
        own_process = processes[-1]
        if "spawn_main" in own_process:
            role = "decoder"
        elif len(processes) > 1:
            role = "other child"
        else:
            role = "parent"
        count = int(count_text)
        totals[role] += count
        own[role][frames[-1]] += count
        for frame in set(frames):
            inclusive[role][frame] += count
    return {
        "profile": str(raw_path),
        "samples": dict(totals),
        "top_own": {role: counter.most_common(PROFILE_TOP) for role, counter in own.items()},
        "top_inclusive": {role: counter.most_common(2 * PROFILE_TOP) for role, counter in inclusive.items()},
    }


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=None, help="input rows, the first of --urls (default: 10000)")
    parser.add_argument("--quick", action="store_true", help=f"trial run: {QUICK_ROWS} rows and 1 repeat unless given otherwise")
    add_run_arguments(parser, (INPUT_NAME,), TOOLS, DEFAULT_TIMEOUT_S)
    parser.add_argument("--processes", type=int, default=2, help="img2dataset's processes_count and wit's --processes (default: 2)")
    parser.add_argument("--thread-count", type=int, default=256, help="img2dataset's thread_count per process (default: 256)")
    parser.add_argument(
        "--concurrency", type=int, default=None,
        help="wit's --concurrency and --per-host (default: --processes times --thread-count, img2dataset's requests in flight)",
    )
    parser.add_argument("--shard-rows", type=int, default=None, help="img2dataset's number_sample_per_shard (default: rows / processes)")
    parser.add_argument(
        "--part-rows", type=int, default=None, help="rows per wit input part (default: img2dataset's shard size, so both write files of the same rows)"
    )
    parser.add_argument("--image-size", type=int, default=256, help="target size in pixels (default: 256)")
    parser.add_argument("--resize-mode", default="keep_ratio", choices=("keep_ratio", "center_crop", "border"),
                        help="resize mode of both tools (default: keep_ratio)")
    parser.add_argument("--jpeg-quality", type=int, default=95, help="JPEG quality of both tools (default: 95)")
    parser.add_argument("--warmup-rows", type=int, default=200, help="rows of the untimed warm-up run of each tool; 0 skips it")
    parser.add_argument("--opencv-floor", action="store_true", help="also measure the floor with OpenCV in the img2dataset venv")
    parser.add_argument(
        "--profile", action="store_true",
        help="after the timed runs, run wit once more under cProfile (parent process only), or under --py-spy when given",
    )
    parser.add_argument("--py-spy", type=Path, default=None, help="py-spy executable that --profile uses to sample every wit process")
    parser.add_argument("--wit-args", default="", help="extra options for `wit fetch`, split like a shell does")
    parser.add_argument("--img2dataset", type=Path, default=DEFAULT_IMG2DATASET, help="img2dataset entry script of its venv")
    parser.add_argument("--img2dataset-args", default="", help="extra options for img2dataset, split like a shell does")
    parser.add_argument("--urls", type=Path, default=DEFAULT_URLS, help="Parquet file with URL and TEXT columns")
    parser.add_argument("--images", type=Path, default=image_server.DEFAULT_IMAGE_DIR, help="photos that the server sends")
    parser.add_argument("--seed", type=int, default=0, help="seed of the server's delays and failures (default: 0)")
    parser.add_argument("--server-workers", type=int, default=2, help="image server processes (default: 2)")
    parser.add_argument("--server-nice", type=int, default=-10, help="nice value of the image server (default: -10)")
    parser.add_argument(
        "--server-cpus", type=lambda text: [int(value) for value in text.split(",")], default=None,
        help="comma-separated CPU numbers to pin the server to (default: not pinned)",
    )
    args = parser.parse_args(argv)

    check_run_arguments(parser, args, (INPUT_NAME,), TOOLS)
    if args.rows is None:
        args.rows = QUICK_ROWS if args.quick else 10_000
    if args.concurrency is None:
        args.concurrency = args.processes * args.thread_count
    if args.part_rows is None:
        args.part_rows = args.shard_rows or default_shard_rows(args.rows, args.processes)
    if args.rows < 1 or args.part_rows < 1:
        parser.error(f"invalid --rows {args.rows} or --part-rows {args.part_rows}: they must be at least 1")
    if "img2dataset" in args.tools and not args.img2dataset.is_file():
        parser.error(f"img2dataset not found: {args.img2dataset}; run `make -C bench img2dataset-venv` first")
    if not args.urls.is_file():
        parser.error(f"URL file not found: {args.urls}; pass --urls")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    stop_on_sigterm()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    sys.path.insert(0, str(REPO_ROOT))
    cpus = pinned_cpus(args.cpus or None)

    rates = image_server.FailureRates()
    samples = load_samples(args.urls, args.rows, args.seed, rates)
    server = ImageServer(args)
    try:
        with tempfile.TemporaryDirectory(prefix="wit-bench-fetch-input-") as scratch:
            bench_input = write_inputs(samples, server.base_url, Path(scratch), args.part_rows)
            bench = FetchBench(args, server, cpus)
            logger.info("%d rows on %s, planned outcomes %s", len(samples), server.base_url, bench_input.outcome_counts())

            warmups = []
            if args.warmup_rows:
                warmup_folder = Path(scratch) / "warmup"
                warmup_folder.mkdir()
                warmup_input = write_inputs(samples[: args.warmup_rows], server.base_url, warmup_folder, args.part_rows)
                for tool in args.tools:
                    run = bench.run(tool, warmup_input, -1)
                    warmups.append(run.as_dict())
                    logger.info("warm-up %s: %s", tool, run.error or f"{run.measurement.wall_s:.2f} s")

            rounds = 0

            def tools_of_round(_input_name: str) -> list[str]:
                # run_rounds calls this once per round. Alternate which tool starts, so a change of load hits both alike.
                nonlocal rounds
                rounds += 1
                return args.tools if rounds % 2 else list(reversed(args.tools))

            runs = run_rounds([INPUT_NAME], tools_of_round, args.repeats, lambda _name, tool, repeat: bench.run(tool, bench_input, repeat))

            images = served_images(bench_input, args.images)
            floors = [measure_pillow_floor(images, args), measure_parallel_pillow_floor(images, args, args.processes)]
            if "wit" in args.tools:
                floors.append(measure_wit_resizer(images, args))
                floors.append(measure_wit_pool(images, args))
            del images
            if args.opencv_floor and args.resize_mode != "keep_ratio":
                logger.warning("the OpenCV floor covers keep_ratio only; it is left out for --resize-mode %s", args.resize_mode)
            elif args.opencv_floor:
                try:
                    floors.append(measure_opencv_floor(bench_input, args))
                except (subprocess.CalledProcessError, OSError, ValueError) as error:
                    logger.error("OpenCV floor failed: %s", error)
                    floors.append({"codec": "OpenCV", "error": str(error)})

            profile = None
            if args.profile and "wit" in args.tools:
                try:
                    cpu_split = wit_cpu_by_process(bench, bench_input)
                    logger.info("wit CPU by process: %s in %.1f s", cpu_split["cpu_s"], cpu_split["wall_s"])
                    if args.py_spy:
                        profile = profile_wit_tree(bench, bench_input, args.results_dir, args.py_spy)
                    else:
                        profile = profile_wit(bench, bench_input, args.results_dir)
                    profile["cpu_by_process"] = cpu_split
                except (CommandFailed, ValueError, OSError, subprocess.TimeoutExpired) as error:
                    logger.error("profiling wit failed: %s", error)
                    profile = {"error": str(error)}
            outcome_counts = bench_input.outcome_counts()
    finally:
        server.close()

    summaries = [summarize([run for run in runs if run.tool == tool]) for tool in args.tools]
    table = result_table(summaries, floors)
    goals = goal_lines(summaries, floors)
    result = {
        "benchmark": "fetch_throughput",
        "machine": machine_facts(cpus),
        "settings": {
            "rows": args.rows, "repeats": args.repeats, "processes": args.processes, "thread_count": args.thread_count,
            "concurrency": args.concurrency, "shard_rows": args.shard_rows, "part_rows": args.part_rows, "image_size": args.image_size,
            "resize_mode": args.resize_mode, "jpeg_quality": args.jpeg_quality, "seed": args.seed,
            "server_command": server.command, "server_cpus": args.server_cpus, "wit_args": args.wit_args,
            "img2dataset_args": args.img2dataset_args, "urls": str(args.urls), "images": str(args.images),
        },
        "planned_outcomes": outcome_counts,
        "summaries": summaries,
        "floors": floors,
        "goals": goals,
        "warmups": warmups,
        "runs": [run.as_dict() for run in runs],
        "profile": profile,
        "markdown": table,
    }
    path = write_result(args.results_dir, "fetch_throughput", result)
    if profile and "top_own" in profile:
        for role, rows in profile["top_own"].items():
            print(f"\nwit {role} processes under py-spy: {profile['samples'][role]:,} samples, top frames by own samples")
            for frame, count in rows:
                print(f"  {count:7,} {100 * count / profile['samples'][role]:5.1f} %  {frame}")
    if profile and "top_by_own_time" in profile:
        print(f"\nwit parent process under cProfile: {profile['total_s']:.2f} s, top functions by own time")
        for row in profile["top_by_own_time"]:
            print(f"  {row['own_s']:7.3f} s own {row['cumulative_s']:7.3f} s cumulative {row['calls']:9,} calls  {row['function']}")
    print(f"\nplanned outcomes: {outcome_counts}")
    print(table)
    for line in goals:
        print(line)
    print(f"\nresult written to {path}")
    return 1 if any("error" in summary for summary in summaries) else 0


if __name__ == "__main__":
    sys.exit(main())
