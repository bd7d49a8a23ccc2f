// graphile-worker's side of dj's peers benchmark: the workloads of benches/peers/README.md
// (as far as graphile-worker has them), with a no-op task, one run each. Prints
// `RESULT graphile-worker <workload> <value> <unit> <note>` lines and one `VERSION` line on
// stdout; progress goes to stderr. Run it through run.sh, which installs the pinned packages.
//
// Environment (all optional):
//   PEERS_GRAPHILE_ADMIN_URL  database to connect to for DROP/CREATE DATABASE
//                             (default postgres://postgres@127.0.0.1:5432/postgres)
//   PEERS_GRAPHILE_DB         the database this benchmark drops and recreates (peers_graphile)
//   PEERS_GRAPHILE_SINGLE     jobs for single_enqueue (2000)
//   PEERS_GRAPHILE_BULK       jobs for bulk_enqueue (100000)
//   PEERS_GRAPHILE_WORKOFF    jobs for workoff_tuned (100000)
//   PEERS_GRAPHILE_WORKOFF_DEFAULT  jobs for workoff_default (20000: at concurrency 1 this
//                             machine does ~550-900 jobs/s, so 100,000 took 182 s, over the
//                             ~2 minutes a workload may take; the note says so)
//   PEERS_GRAPHILE_PICKUP     jobs for the pickup latency (200, 20 ms apart)
import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { Logger, makeWorkerUtils, run, runMigrations, runOnce } from "graphile-worker";

const require = createRequire(import.meta.url);
const gwVersion = require("graphile-worker/package.json").version;

const adminUrl =
  process.env.PEERS_GRAPHILE_ADMIN_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const dbName = process.env.PEERS_GRAPHILE_DB ?? "peers_graphile";
const url = (() => {
  const u = new URL(adminUrl);
  u.pathname = `/${dbName}`;
  return u.toString();
})();
const int = (name, dflt) => {
  const v = process.env[name];
  if (v === undefined || v === "") return dflt;
  const n = Number.parseInt(v, 10);
  if (!(n > 0)) throw new Error(`${name} must be a positive integer, got ${v}`);
  return n;
};
const N_SINGLE = int("PEERS_GRAPHILE_SINGLE", 2000);
const N_BULK = int("PEERS_GRAPHILE_BULK", 100000);
const N_WORKOFF = int("PEERS_GRAPHILE_WORKOFF", 100000);
const N_WORKOFF_DEFAULT = int("PEERS_GRAPHILE_WORKOFF_DEFAULT", 20000);
const N_PICKUP = int("PEERS_GRAPHILE_PICKUP", 200);
const PICKUP_GAP_MS = 20;

// graphile-worker's default logger prints a line per completed job at `info`; an app would
// route that somewhere, dj's benchmark logs nothing, so here only warnings and errors are kept.
const logger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") console.error(`[graphile-worker ${level}] ${message}`);
});
const log = (msg) => console.error(`graphile-worker bench: ${msg}`);

// The settings of graphile-worker's Performance page (worker.graphile.org/docs/performance):
// the configuration its quick stats were measured with.
const TUNED = {
  concurrentJobs: 24,
  maxPoolSize: 25,
  localQueue: { size: 500 },
  completeJobBatchDelay: 0,
  failJobBatchDelay: 0,
};
const TUNED_NOTE =
  "concurrentJobs=24,maxPoolSize=25,localQueue.size=500,completeJobBatchDelay=0,failJobBatchDelay=0";

async function admin(sql) {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

async function sql(text, values) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(text, values)).rows;
  } finally {
    await c.end();
  }
}

const result = (workload, value, unit, note) => {
  const v = unit === "ms" ? value.toFixed(2) : value.toFixed(0);
  console.log(`RESULT graphile-worker ${workload} ${v} ${unit} ${note}`);
};

/** Drop graphile-worker's schema and migrate it again, then CHECKPOINT: every workload starts
 * from an empty queue and clean buffers, as dj's do. */
async function fresh() {
  await sql("DROP SCHEMA IF EXISTS graphile_worker CASCADE");
  await runMigrations({ connectionString: url, logger });
  await sql("CHECKPOINT");
}

async function jobCount() {
  const [{ n }] = await sql("SELECT count(*)::int AS n FROM graphile_worker._private_jobs");
  return n;
}

const noopSpecs = (n) => Array.from({ length: n }, () => ({ identifier: "noop", payload: {} }));

async function singleEnqueue() {
  await fresh();
  const utils = await makeWorkerUtils({ connectionString: url, logger });
  try {
    // A few calls first so the pool's connection and prepared statements exist, as in a
    // running app; these are not counted (and are removed before the timed calls).
    for (let i = 0; i < 20; i++) await utils.addJob("noop", {});
    await sql("DELETE FROM graphile_worker._private_jobs");
    const t0 = performance.now();
    for (let i = 0; i < N_SINGLE; i++) await utils.addJob("noop", {});
    const s = (performance.now() - t0) / 1000;
    const n = await jobCount();
    if (n !== N_SINGLE) throw new Error(`single_enqueue: ${n} jobs in the table, expected ${N_SINGLE}`);
    result("single_enqueue", N_SINGLE / s, "jobs/s", `addJob,n=${N_SINGLE}`);
  } finally {
    await utils.release();
  }
}

async function bulkEnqueue() {
  await fresh();
  const utils = await makeWorkerUtils({ connectionString: url, logger });
  try {
    await utils.addJob("noop", {}); // connect and prepare, as above
    await sql("DELETE FROM graphile_worker._private_jobs");
    const specs = noopSpecs(N_BULK);
    const t0 = performance.now();
    await utils.addJobs(specs);
    const s = (performance.now() - t0) / 1000;
    const n = await jobCount();
    if (n !== N_BULK) throw new Error(`bulk_enqueue: ${n} jobs in the table, expected ${N_BULK}`);
    result("bulk_enqueue", N_BULK / s, "jobs/s", `addJobs,one-call,n=${N_BULK}`);
  } finally {
    await utils.release();
  }
}

/** N no-op jobs enqueued with addJobs, VACUUM ANALYZE, CHECKPOINT, then one runOnce (which
 * starts a worker pool, works until no job is left, and shuts down) timed from the call to
 * its promise resolving. */
async function workoff(workload, n, preset, note) {
  await fresh();
  const utils = await makeWorkerUtils({ connectionString: url, logger });
  try {
    await utils.addJobs(noopSpecs(n));
  } finally {
    await utils.release();
  }
  await sql("VACUUM ANALYZE");
  await sql("CHECKPOINT");
  let done = 0;
  const taskList = {
    noop: async () => {
      done++;
    },
  };
  const t0 = performance.now();
  await runOnce({ connectionString: url, logger, noHandleSignals: true, taskList, preset });
  const s = (performance.now() - t0) / 1000;
  const left = await jobCount();
  if (left !== 0 || done !== n) {
    throw new Error(`${workload}: ${done} performed, ${left} left in the table (expected ${n}, 0)`);
  }
  log(`${workload}: ${n} jobs in ${s.toFixed(1)} s`);
  const size = n === 100000 ? `n=${n}` : `n=${n}(not-100000)`;
  result(workload, n / s, "jobs/s", `${note},${size}`);
}

/** An idle worker (default settings: LISTEN/NOTIFY, concurrency 1), then N_PICKUP jobs enqueued
 * PICKUP_GAP_MS apart with addJob from the same process; latency = addJob's promise resolving
 * → the task function starting. A task starting before the enqueuing client has seen its
 * commit counts as 0 (as in dj's benchmark). */
async function pickup() {
  await fresh();
  const started = new Array(N_PICKUP);
  let count = 0;
  const taskList = {
    noop: async (payload) => {
      started[payload.seq] = performance.now();
      count++;
    },
  };
  const utils = await makeWorkerUtils({ connectionString: url, logger });
  const runner = await run({ connectionString: url, logger, noHandleSignals: true, taskList });
  try {
    await utils.addJob("noop", { seq: -1 }); // connect and prepare; let the worker run one
    await sleep(500); // let the worker find the queue empty and sit LISTENing
    const committed = new Array(N_PICKUP);
    const first = performance.now();
    for (let seq = 0; seq < N_PICKUP; seq++) {
      const wait = first + PICKUP_GAP_MS * seq - performance.now();
      if (wait > 0) await sleep(wait);
      await utils.addJob("noop", { seq });
      committed[seq] = performance.now();
    }
    const deadline = performance.now() + 10_000;
    while (count < N_PICKUP + 1 && performance.now() < deadline) await sleep(5);
    if (count < N_PICKUP + 1) throw new Error(`pickup: only ${count - 1} of ${N_PICKUP} jobs started within 10 s`);
    const ms = committed.map((c, seq) => Math.max(0, started[seq] - c)).sort((a, b) => a - b);
    const q = (p) => ms[Math.min(ms.length, Math.max(1, Math.ceil(p * ms.length))) - 1];
    const note = `run()-defaults,n=${N_PICKUP},gap=${PICKUP_GAP_MS}ms`;
    result("pickup_p50_ms", q(0.5), "ms", note);
    result("pickup_p99_ms", q(0.99), "ms", note);
  } finally {
    await runner.stop();
    await utils.release();
  }
}

async function main() {
  const t0 = performance.now();
  log(`DROP and CREATE DATABASE ${dbName}`);
  await admin(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await admin(`CREATE DATABASE ${dbName}`);
  const [{ server_version }] = await sql("SHOW server_version");
  console.log(`VERSION graphile-worker ${gwVersion} node ${process.versions.node}`);
  log(`PostgreSQL ${server_version}; single_enqueue`);
  await singleEnqueue();
  log("bulk_enqueue");
  await bulkEnqueue();
  log("workoff_default");
  await workoff("workoff_default", N_WORKOFF_DEFAULT, undefined, "defaults:concurrentJobs=1,pollInterval=2000,no-localQueue,no-batching");
  log("workoff_tuned");
  await workoff("workoff_tuned", N_WORKOFF, { worker: TUNED }, TUNED_NOTE);
  log("pickup");
  await pickup();
  log(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
