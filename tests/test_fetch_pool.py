"""DecodePool: CPU and wall-clock limits per image, crashed workers, replacement, and the fetch stage on top."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import statistics
import time

import pytest
from PIL import Image

from wit_builder.fetch.pool import DecodePool
from wit_builder.net import event_loop
from wit_builder.fetch.resizer import ResizeOptions, resize_image
from wit_builder.records import FetchStatus

OPTIONS = ResizeOptions(image_size=32)

# Bodies that make ``decode_with_test_commands`` misbehave inside the worker.
BURN_CPU = b"BURN-CPU"
SLEEP = b"SLEEP"
CRASH = b"CRASH"
RAISE = b"RAISE"


def decode_with_test_commands(data: bytes, content_type: str | None, options: ResizeOptions):
    """Stand in for a decoder that loops, stalls, crashes or has a bug, on request.

    The pool pickles this function by name, so the worker process imports this module.
    """
    if data.startswith(BURN_CPU):
        while True:
            pass
    if data.startswith(SLEEP):
        time.sleep(3600)
    if data.startswith(CRASH):
        os.kill(os.getpid(), signal.SIGSEGV)
    if data.startswith(RAISE):
        raise RuntimeError("decoder bug")
    return resize_image(data, content_type, options)


def png_bytes(colour=(30, 140, 220), size=(48, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_pool_decodes_images():
    async def run(pool):
        return await asyncio.gather(*(pool.resize(png_bytes((index, 0, 0)), "image/png", OPTIONS) for index in range(6)))

    with DecodePool(processes=2) as pool:
        results = asyncio.run(run(pool))
        assert 1 <= len(pool.worker_pids()) <= 2
    assert [result.status for result in results] == [FetchStatus.OK] * 6
    assert all(result.width == 38 and result.height == 32 for result in results)


def noise_png(size: int) -> bytes:
    """A PNG of random pixels, whose JPEG stays large: several hundred KB at 1000 pixels."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (size, size), os.urandom(size * size * 3)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


@pytest.mark.parametrize("use_uvloop", [False, True], ids=["asyncio", "uvloop"])
def test_async_large_replies_arrive_whole(use_uvloop):
    """Replies larger than a socket buffer are read whole, on both event loops."""
    options = ResizeOptions(image_size=32, resize_mode="no")
    bodies = [noise_png(1000) for _ in range(4)]

    async def run(pool):
        return await asyncio.gather(*(pool.resize(body, "image/png", options) for body in bodies * 2))

    with DecodePool(processes=2) as pool:
        results = event_loop.run(run(pool), use_uvloop)
        restarts = pool.restarts

    assert [result.status for result in results] == [FetchStatus.OK] * 8
    assert all(len(result.jpeg) > 200_000 for result in results)
    assert restarts == 0


@pytest.mark.parametrize("use_uvloop", [False, True], ids=["asyncio", "uvloop"])
def test_async_failures_stay_with_their_image(use_uvloop):
    """On the asyncio path, a stall, a crash and a bug end only their own image, while the others decode."""
    bodies = [png_bytes((index, 0, 0)) for index in range(8)]
    bodies[1], bodies[4], bodies[6] = SLEEP, CRASH, RAISE

    async def run(pool):
        return await asyncio.gather(*(pool.resize(body, "image/png", OPTIONS) for body in bodies))

    with DecodePool(processes=2, cpu_seconds=30, wall_seconds=1.5, decode_function=decode_with_test_commands) as pool:
        results = event_loop.run(run(pool), use_uvloop)
        restarts = pool.restarts

    statuses = [result.status for result in results]
    assert statuses[1] is FetchStatus.DECODE_TIMEOUT
    assert "wall-clock" in results[1].error
    assert statuses[4] is FetchStatus.DECODE_ERROR
    assert "SIGSEGV" in results[4].error
    assert statuses[6] is FetchStatus.DECODE_ERROR
    assert "decoder bug" in results[6].error
    assert [status for index, status in enumerate(statuses) if index not in (1, 4, 6)] == [FetchStatus.OK] * 5
    assert restarts == 2


@pytest.mark.parametrize("use_uvloop", [False, True], ids=["asyncio", "uvloop"])
def test_cancelled_resize_frees_its_worker(use_uvloop):
    """A cancelled image that stalls its worker occupies it only until the wall-clock limit."""

    async def run(pool):
        await pool.resize(png_bytes(), "image/png", OPTIONS)  # start the worker
        stalled = asyncio.create_task(pool.resize(SLEEP, None, OPTIONS))
        await asyncio.sleep(0.5)
        stalled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stalled
        return await pool.resize(png_bytes(), "image/png", OPTIONS)

    with DecodePool(processes=1, cpu_seconds=30, wall_seconds=2.0, decode_function=decode_with_test_commands) as pool:
        started = time.monotonic()
        result = event_loop.run(run(pool), use_uvloop)
        elapsed = time.monotonic() - started
        restarts = pool.restarts

    assert result.status is FetchStatus.OK, result.error
    assert restarts == 1
    assert elapsed < 15


def test_closed_pool_fails_waiting_images():
    async def run(pool):
        await pool.resize(png_bytes(), "image/png", OPTIONS)  # start the worker
        stalled = asyncio.create_task(pool.resize(SLEEP, None, OPTIONS))
        waiting = asyncio.create_task(pool.resize(png_bytes(), "image/png", OPTIONS))
        await asyncio.sleep(0.5)
        pool.close()
        return await asyncio.gather(stalled, waiting, return_exceptions=True)

    pool = DecodePool(processes=1, cpu_seconds=30, wall_seconds=60, decode_function=decode_with_test_commands)
    results = asyncio.run(run(pool))
    for result in results:
        assert isinstance(result, RuntimeError)
        assert "closed" in str(result)
    with pytest.raises(RuntimeError, match="closed"):
        pool.resize_blocking(png_bytes(), "image/png", OPTIONS)


def test_cpu_burn_killed_at_cpu_limit():
    with DecodePool(processes=1, cpu_seconds=1, wall_seconds=60, decode_function=decode_with_test_commands) as pool:
        assert pool.resize_blocking(png_bytes(), "image/png", OPTIONS).status is FetchStatus.OK
        (first_pid,) = pool.worker_pids()

        started = time.monotonic()
        result = pool.resize_blocking(BURN_CPU, "image/jpeg", OPTIONS)
        elapsed = time.monotonic() - started
        assert result.status is FetchStatus.DECODE_TIMEOUT
        assert "1 s of CPU time" in result.error
        # 1 s limit plus up to 1 s of rounding; the rest is slack for a busy machine.
        assert elapsed < 20, f"the CPU limit took {elapsed:.1f} s to act"
        assert pool.timeouts == 1
        assert pool.restarts == 1

        # The run continues on a replacement worker.
        result = pool.resize_blocking(png_bytes(), "image/png", OPTIONS)
        assert result.status is FetchStatus.OK, result.error
        (second_pid,) = pool.worker_pids()
        assert second_pid != first_pid


def test_stalled_decoder_killed_at_wall_limit():
    with DecodePool(processes=1, cpu_seconds=30, wall_seconds=1.0, decode_function=decode_with_test_commands) as pool:
        started = time.monotonic()
        result = pool.resize_blocking(SLEEP, None, OPTIONS)
        elapsed = time.monotonic() - started
        assert result.status is FetchStatus.DECODE_TIMEOUT
        assert "wall-clock" in result.error
        assert elapsed < 15
        assert pool.restarts == 1

        assert pool.resize_blocking(png_bytes(), "image/png", OPTIONS).status is FetchStatus.OK


def test_crashed_worker_recorded_and_replaced():
    with DecodePool(processes=1, decode_function=decode_with_test_commands) as pool:
        result = pool.resize_blocking(CRASH, None, OPTIONS)
        assert result.status is FetchStatus.DECODE_ERROR
        assert "SIGSEGV" in result.error
        assert pool.restarts == 1
        assert pool.timeouts == 0

        assert pool.resize_blocking(png_bytes(), "image/png", OPTIONS).status is FetchStatus.OK


def test_decoder_exception_keeps_worker(caplog):
    with DecodePool(processes=1, decode_function=decode_with_test_commands) as pool:
        result = pool.resize_blocking(RAISE, None, OPTIONS)
        assert result.status is FetchStatus.DECODE_ERROR
        assert "RuntimeError: decoder bug" in result.error
        assert pool.restarts == 0
        assert "decoder bug" in caplog.text

        assert pool.resize_blocking(png_bytes(), "image/png", OPTIONS).status is FetchStatus.OK


def test_killed_idle_worker_replaced():
    with DecodePool(processes=1) as pool:
        assert pool.resize_blocking(png_bytes(), "image/png", OPTIONS).status is FetchStatus.OK
        (pid,) = pool.worker_pids()
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)

        result = pool.resize_blocking(png_bytes(), "image/png", OPTIONS)
        assert result.status is FetchStatus.OK, result.error
        assert pool.restarts == 1


def test_bad_images_do_not_stop_others():
    bodies = [png_bytes((index * 20, 0, 0)) for index in range(8)]
    bodies[1] = BURN_CPU
    bodies[4] = CRASH
    bodies[6] = SLEEP

    async def run(pool):
        return await asyncio.gather(*(pool.resize(body, None, OPTIONS) for body in bodies))

    with DecodePool(processes=2, cpu_seconds=1, wall_seconds=4, decode_function=decode_with_test_commands) as pool:
        results = asyncio.run(run(pool))
        assert pool.restarts == 3
        assert pool.timeouts == 2

    statuses = [result.status for result in results]
    expected = [FetchStatus.OK] * 8
    expected[1] = FetchStatus.DECODE_TIMEOUT
    expected[4] = FetchStatus.DECODE_ERROR
    expected[6] = FetchStatus.DECODE_TIMEOUT
    assert statuses == expected


def test_closed_pool_rejects_calls():
    pool = DecodePool(processes=1)
    pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        pool.resize_blocking(png_bytes(), "image/png", OPTIONS)


def test_invalid_cpu_limit():
    with pytest.raises(ValueError, match="cpu_seconds"):
        DecodePool(processes=1, cpu_seconds=0)


def test_pool_overhead_per_image():
    # Round trip cost of the pool (pickling, pipe, setrlimit) over calling resize_image
    # in-process, on one worker and small images. A loose bound, because the machine
    # that runs the tests may be busy.
    data = png_bytes(size=(64, 64))
    count = 200
    with DecodePool(processes=1) as pool:
        pool.resize_blocking(data, "image/png", OPTIONS)  # start the worker
        pooled = []
        for _ in range(count):
            started = time.perf_counter()
            pool.resize_blocking(data, "image/png", OPTIONS)
            pooled.append(time.perf_counter() - started)
    direct = []
    for _ in range(count):
        started = time.perf_counter()
        resize_image(data, "image/png", OPTIONS)
        direct.append(time.perf_counter() - started)

    overhead = statistics.median(pooled) - statistics.median(direct)
    print(f"pool overhead per image: {overhead * 1e3:.3f} ms (median pooled {statistics.median(pooled) * 1e3:.3f} ms)")
    assert overhead < 0.05


def test_fetch_partition_records_decode_timeout(tmp_path):
    # A real loopback server serves two photos and one body that stalls the decoder.
    # These imports stay here, so that worker processes, which import this module
    # for decode_with_test_commands, start faster.
    from aiohttp import web

    from wit_builder.fetch.fetcher import FetchConfig, fetch_partition
    from wit_builder.localserver import BackgroundServer
    from wit_builder.net.client import HttpConfig
    from wit_builder.parquet import read_records, write_records
    from wit_builder.records import FetchResult, MatchedCandidate, candidate_id

    bodies = {"a.png": png_bytes((200, 0, 0)), "stall.jpg": SLEEP, "b.png": png_bytes((0, 200, 0))}

    def make_app():
        async def serve(request):
            body = bodies.get(request.match_info["name"])
            if body is None:
                raise web.HTTPNotFound()  # robots.txt too: no rules
            return web.Response(body=body, content_type="image/png")

        app = web.Application()
        app.router.add_get("/{name}", serve)
        return app

    with BackgroundServer(make_app) as server:
        rows = [
            MatchedCandidate(
                candidate_id=candidate_id(f"{server.base_url}{name}", name),
                url=f"{server.base_url}{name}",
                text=name,
                text_source="alt",
                page_url="http://example.org/page.html",
                source="test",
                query_ids=[0],
            )
            for name in bodies
        ]
        in_path = tmp_path / "part-00000.parquet"
        out_path = tmp_path / "fetched.parquet"
        write_records(in_path, rows, MatchedCandidate)
        config = FetchConfig(http=HttpConfig(allow_private=True, timeout_s=5.0, retries=0), image_size=32, processes=1)
        with DecodePool(processes=1, wall_seconds=2.0, decode_function=decode_with_test_commands) as pool:
            stats = fetch_partition(in_path, out_path, config, pool=pool)

    results = read_records(out_path, FetchResult)
    assert [result.status for result in results] == ["ok", "decode_timeout", "ok"]
    assert stats.counts["decode_timeout"] == 1
    assert stats.ok == 2
