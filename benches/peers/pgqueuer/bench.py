"""pgqueuer on dj's peer workloads. Run by run.sh; prints RESULT / VERSION lines.

Every job is a no-op async entrypoint. One process, one event loop (uvloop, as `pgq run`
uses), asyncpg connections to the database named by --dsn, whose pgqueuer schema run.sh
installed with `pgq install`.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
from datetime import timedelta
from importlib.metadata import version

import asyncpg
import uvloop

from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver, AsyncpgPoolDriver
from pgqueuer.models import Job
from pgqueuer.queries import Queries
from pgqueuer.types import QueueExecutionMode

EP = "noop"


def log(msg: str) -> None:
    print(f"# {msg}", file=sys.stderr, flush=True)


def result(workload: str, value: float, unit: str, note: str) -> None:
    print(f"RESULT pgqueuer {workload} {value:.{1 if unit == 'jobs/s' else 2}f} {unit} {note}",
          flush=True)


async def reset(dsn: str) -> None:
    """Empty pgqueuer's tables and checkpoint, so no workload pays for the one before."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "TRUNCATE pgqueuer, pgqueuer_log, pgqueuer_statistics RESTART IDENTITY"
        )
        await conn.execute("VACUUM ANALYZE pgqueuer")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def bulk(queries: Queries, n: int, entrypoint: str = EP) -> None:
    await queries.enqueue([entrypoint] * n, [None] * n, [0] * n)


async def queue_rows(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT count(*) FROM pgqueuer")
    finally:
        await conn.close()


async def single_enqueue(dsn: str, n: int) -> None:
    await reset(dsn)
    conn = await asyncpg.connect(dsn)
    queries = Queries(AsyncpgDriver(conn))
    t0 = time.perf_counter()
    for _ in range(n):
        # asyncpg outside a transaction block: each call is its own transaction.
        await queries.enqueue(EP, None)
    dt = time.perf_counter() - t0
    await conn.close()
    assert await queue_rows(dsn) == n
    result("single_enqueue", n / dt, "jobs/s", f"n={n},one_enqueue_per_tx")


async def bulk_enqueue(dsn: str, n: int) -> None:
    await reset(dsn)
    conn = await asyncpg.connect(dsn)
    queries = Queries(AsyncpgDriver(conn))
    t0 = time.perf_counter()
    await bulk(queries, n)  # one call, one INSERT .. SELECT unnest(arrays) statement
    dt = time.perf_counter() - t0
    await conn.close()
    assert await queue_rows(dsn) == n
    result("bulk_enqueue", n / dt, "jobs/s", f"n={n},one_call")


async def workoff(dsn: str, n: int, workload: str, tuned: dict | None) -> None:
    await reset(dsn)
    conn = await asyncpg.connect(dsn)
    await bulk(Queries(AsyncpgDriver(conn)), n)
    await conn.execute("VACUUM ANALYZE pgqueuer")
    await conn.execute("CHECKPOINT")
    await conn.close()

    pool = None
    if tuned is None:
        conn = await asyncpg.connect(dsn)
        pgq = PgQueuer(AsyncpgDriver(conn))
        run_kwargs: dict = {}
        note = "defaults(batch_size=10,max_concurrent_tasks=None,one_asyncpg_connection)"
    else:
        if tuned["pool"]:
            pool = await asyncpg.create_pool(dsn, min_size=tuned["pool"], max_size=tuned["pool"])
            pgq = PgQueuer(AsyncpgPoolDriver(pool))
        else:
            conn = await asyncpg.connect(dsn)
            pgq = PgQueuer(AsyncpgDriver(conn))
        run_kwargs = {"batch_size": tuned["batch_size"]}
        if tuned["max_concurrent_tasks"]:
            run_kwargs["max_concurrent_tasks"] = tuned["max_concurrent_tasks"]
        note = (f"batch_size={tuned['batch_size']},"
                f"max_concurrent_tasks={tuned['max_concurrent_tasks'] or None},"
                + (f"asyncpg_pool={tuned['pool']}" if tuned["pool"] else "one_asyncpg_connection"))

    done = 0
    last = 0.0

    @pgq.entrypoint(EP)
    async def noop(job: Job) -> None:
        nonlocal done, last
        done += 1
        last = time.perf_counter()

    t0 = time.perf_counter()
    # drain: pgqueuer's own "work off": stops once nothing is queued and no task runs,
    # then flushes its status buffers (each finished job's delete + log row) on the way out.
    await pgq.run(mode=QueueExecutionMode.drain, **run_kwargs)
    dt = time.perf_counter() - t0
    if pool is not None:
        await pool.close()
    else:
        await conn.close()
    left = await queue_rows(dsn)
    assert done == n, (done, n)
    assert left == 0, left
    result(workload, n / dt, "jobs/s",
           f"n={n},{note},mode=drain,last_perform_at={last - t0:.2f}s,run_returned_at={dt:.2f}s")


async def pickup(dsn: str, n: int, gap_s: float) -> None:
    await reset(dsn)
    conn = await asyncpg.connect(dsn)
    pgq = PgQueuer(AsyncpgDriver(conn))
    started: dict[int, float] = {}

    @pgq.entrypoint(EP)
    async def noop(job: Job) -> None:
        started[job.id] = time.perf_counter()

    consumer = asyncio.create_task(pgq.run())  # defaults, continuous mode (LISTEN + poll)
    await asyncio.sleep(2.0)  # let it start, LISTEN and go idle
    assert not consumer.done()

    pconn = await asyncpg.connect(dsn)
    producer = Queries(AsyncpgDriver(pconn))
    returned: dict[int, float] = {}
    enq_ms: list[float] = []
    for _ in range(n):
        t_call = time.perf_counter()
        (job_id,) = await producer.enqueue(EP, None)
        t_ret = time.perf_counter()
        returned[job_id] = t_ret
        enq_ms.append((t_ret - t_call) * 1000)
        await asyncio.sleep(gap_s)
    deadline = time.perf_counter() + 30
    while len(started) < n and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    pgq.shutdown.set()
    await consumer
    await pconn.close()
    await conn.close()
    assert len(started) == n, (len(started), n)
    lat = sorted((started[j] - returned[j]) * 1000 for j in returned)
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, round(0.99 * len(lat)) - 1)]
    note = f"n={n},gap={gap_s * 1000:.0f}ms,defaults,enqueue_p50={statistics.median(enq_ms):.2f}ms"
    result("pickup_p50_ms", p50, "ms", note)
    result("pickup_p99_ms", p99, "ms", note)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--only", default="single,bulk,workoff_default,workoff_tuned,pickup")
    ap.add_argument("--single-n", type=int, default=2000)
    ap.add_argument("--bulk-n", type=int, default=100_000)
    ap.add_argument("--workoff-n", type=int, default=100_000)
    ap.add_argument("--pickup-n", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--max-concurrent-tasks", type=int, default=0)
    ap.add_argument("--pool", type=int, default=0, help="asyncpg pool size for tuned (0: one connection)")
    a = ap.parse_args()
    only = set(a.only.split(","))

    print(f"VERSION pgqueuer {version('pgqueuer')} python {platform.python_version()}", flush=True)
    log(f"asyncpg {version('asyncpg')}, uvloop {version('uvloop')}")
    if "single" in only:
        await single_enqueue(a.dsn, a.single_n)
    if "bulk" in only:
        await bulk_enqueue(a.dsn, a.bulk_n)
    if "workoff_default" in only:
        await workoff(a.dsn, a.workoff_n, "workoff_default", None)
    if "workoff_tuned" in only:
        tuned = {"batch_size": a.batch_size, "max_concurrent_tasks": a.max_concurrent_tasks,
                 "pool": a.pool}
        await workoff(a.dsn, a.workoff_n, "workoff_tuned", tuned)
    if "pickup" in only:
        await pickup(a.dsn, a.pickup_n, 0.020)


if __name__ == "__main__":
    uvloop.run(main())
