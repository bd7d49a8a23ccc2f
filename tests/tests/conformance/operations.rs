//! Operating dj with real processes: the `start` pool (restarts, TERM, the shutdown timeout,
//! its own death), the second TERM, the operator commands (`stats`, `retry`, `unlock --stale`,
//! bulk deletes off a terminal), `stop`/`status` and JSON logs.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use dj::{Job, JobFilter, JobState};
use dj_tests::jobs::{Add, GivesUp, Record};
use dj_tests::support::{Backend, TestDb};

use crate::processes::{signal, sleeps, spawn_worker, wait_exit, worker_output};
use crate::Case;

pub const CASES: &[Case] = &[
    ("every_json_output_is_an_object_of_version_1", json_shapes),
    (
        "pool_restarts_a_sigkilled_worker_and_its_job_is_performed",
        pool_restarts_killed_worker,
    ),
    (
        "term_to_the_pool_lets_running_jobs_finish_and_exits_0",
        pool_term_finishes_jobs,
    ),
    (
        "job_past_the_shutdown_timeout_is_unlocked_and_performed_later",
        shutdown_timeout_unlocks,
    ),
    ("a_second_term_exits_at_once", second_term),
    (
        "pool_workers_handle_a_platform_term_and_the_forwarded_one",
        platform_and_forwarded_term,
    ),
    ("pool_workers_exit_when_the_pool_dies", supervisor_death),
    ("stop_and_status_use_the_pid_file", stop_and_status),
    ("retry_failed_makes_failed_jobs_run_again", retry_failed),
    ("stats_json_counts_match_the_table", stats_json),
    ("unlock_stale_releases_only_dead_workers_rows", unlock_stale),
    (
        "bulk_delete_off_a_terminal_needs_yes",
        bulk_delete_needs_yes,
    ),
    ("json_logs_keep_delayed_jobs_wording", json_logs),
    ("jobs_says_how_many_more_match_than_it_lists", jobs_limit),
    (
        "a_name_filter_of_no_registered_job_names_the_close_ones",
        unknown_name_hint,
    ),
];

const WORKER: &str = env!("CARGO_BIN_EXE_dj-test-worker");

/// Runs a one-shot command of the test binary (stdin not a terminal) and returns its output.
pub fn dj(t: &TestDb, args: &[&str]) -> Output {
    Command::new(WORKER)
        .args(args)
        .env("DATABASE_URL", &t.url)
        .stdin(Stdio::null())
        .output()
        .expect("run the worker binary")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Polls `check` every 20 ms for up to `timeout`.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    check()
}

/// True if `pid` is a live process (not a zombie waiting to be reaped).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// The pool's workers as its log names them (`dj.N started (pid P)`), latest pid per slot.
fn pool_workers(output: &str) -> Vec<(String, u32)> {
    let mut slots: Vec<(String, u32)> = Vec::new();
    for line in output.lines() {
        let Some((before, after)) = line.split_once(" started (pid ") else {
            continue;
        };
        let name = before.rsplit(' ').next().unwrap_or_default().to_owned();
        let pid = after
            .split(')')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a pid");
        slots.retain(|(n, _)| *n != name);
        slots.push((name, pid));
    }
    slots.sort();
    slots
}

/// Waits until the pool's log shows `n` workers started, all alive; returns them.
fn wait_for_workers(t: &TestDb, label: &str, n: usize) -> Vec<(String, u32)> {
    let mut workers = Vec::new();
    let ok = wait_until(Duration::from_secs(15), || {
        workers = pool_workers(&worker_output(t, label));
        workers.len() == n && workers.iter().all(|(_, pid)| alive(*pid))
    });
    assert!(
        ok,
        "{n} live workers: {workers:?}\n{}",
        worker_output(t, label)
    );
    workers
}

fn pid_of(child: &Child) -> u32 {
    child.id()
}

pub fn kill(pid: u32, sig: libc::c_int) {
    // SAFETY: signalling a process these tests started.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(rc, 0, "signal {pid}");
}

/// Stops a pool with TERM and asserts it exits 0.
fn stop_pool(t: &TestDb, pool: &mut Child, label: &str) {
    signal(pool, libc::SIGTERM);
    let status = wait_exit(pool, Duration::from_secs(30));
    assert!(status.success(), "{status}\n{}", worker_output(t, label));
}

fn pool_restarts_killed_worker(backend: Backend) {
    let t = TestDb::new(backend, "poolkill");
    let log = t.log();
    let id = sleeps(&t, &log, "k", 1500);
    let mut pool = spawn_worker(
        &t,
        "pool",
        &[
            "start",
            "-n",
            "3",
            "--sleep-delay",
            "0.2",
            "--rescue-interval",
            "0.5",
            "--read-ahead",
            "0",
        ],
    );
    let before = wait_for_workers(&t, "pool", 3);
    assert!(log.wait_for("start k", Duration::from_secs(15)));
    let locker = t.db.job(id).unwrap().unwrap().locked_by.expect("locked");
    assert!(locker.starts_with("dj."), "named by its slot: {locker}");
    let (_, victim) = dj::worker::parse_worker_name(&locker).expect("a worker name");
    kill(victim, libc::SIGKILL);

    // Back to three live workers, the dead one replaced under its slot's name.
    let ok = wait_until(Duration::from_secs(10), || {
        let now = pool_workers(&worker_output(&t, "pool"));
        now.len() == 3
            && now.iter().all(|(_, pid)| alive(*pid))
            && !now.iter().any(|(_, pid)| *pid == victim)
    });
    let out = worker_output(&t, "pool");
    assert!(ok, "the pool is back to 3\n{out}");
    assert!(
        out.contains(&format!(
            "(pid {victim}) died: killed by signal 9 (SIGKILL)"
        )),
        "says why it died\n{out}"
    );
    let after = pool_workers(&out);
    let names = |w: &[(String, u32)]| w.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&before), names(&after));

    // The killed worker's job: rescued (one attempt counted), then performed.
    assert!(
        log.wait_for("done k", Duration::from_secs(20)),
        "the killed worker's job was performed\n{}",
        worker_output(&t, "pool")
    );
    stop_pool(&t, &mut pool, "pool");
    assert_eq!(log.count("start k"), 2);
    assert_eq!(log.count("done k"), 1);
    assert!(t.db.job(id).unwrap().is_none());
}

fn pool_term_finishes_jobs(backend: Backend) {
    let t = TestDb::new(backend, "poolterm");
    let log = t.log();
    sleeps(&t, &log, "a", 2500);
    sleeps(&t, &log, "b", 2500);
    let logs = t.dir.join("log");
    let mut pool = spawn_worker(
        &t,
        "pool",
        &[
            "start",
            "-n",
            "2",
            "--sleep-delay",
            "0.2",
            "--read-ahead",
            "0",
            "--shutdown-timeout",
            "10",
            "--log-dir",
            logs.to_str().unwrap(),
        ],
    );
    assert!(log.wait_for("start a", Duration::from_secs(15)));
    assert!(log.wait_for("start b", Duration::from_secs(15)));
    let asked = Instant::now();
    signal(&pool, libc::SIGTERM);
    let status = wait_exit(&mut pool, Duration::from_secs(30));
    let took = asked.elapsed();
    let out = worker_output(&t, "pool");
    assert!(status.success(), "{status}\n{out}");
    assert!(
        took < Duration::from_secs(10),
        "within the timeout: {took:?}"
    );
    assert_eq!(log.count("done a"), 1, "{out}");
    assert_eq!(log.count("done b"), 1, "{out}");
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), 0);

    // --log-dir: each worker wrote its own file; the pool's stdout has only its own lines.
    for n in 1..=2 {
        let file = std::fs::read_to_string(logs.join(format!("dj-{n}.log"))).unwrap();
        assert!(
            file.contains(&format!("[Worker(dj.{n} host:")),
            "dj-{n}.log: {file}"
        );
        assert!(file.contains("Starting job worker"), "dj-{n}.log: {file}");
        assert!(file.contains("Exiting..."), "dj-{n}.log: {file}");
    }
    assert!(!out.contains("Starting job worker"), "{out}");
    assert!(out.contains("Stopping pool"), "{out}");
}

fn shutdown_timeout_unlocks(backend: Backend) {
    let t = TestDb::new(backend, "pooltimeout");
    let log = t.log();
    let id = sleeps(&t, &log, "k", 6000);
    let mut pool = spawn_worker(
        &t,
        "pool",
        &[
            "start",
            "-n",
            "1",
            "--sleep-delay",
            "0.2",
            "--shutdown-timeout",
            "1",
        ],
    );
    assert!(log.wait_for("start k", Duration::from_secs(15)));
    let asked = Instant::now();
    signal(&pool, libc::SIGTERM);
    let status = wait_exit(&mut pool, Duration::from_secs(30));
    let took = asked.elapsed();
    let out = worker_output(&t, "pool");
    assert!(
        status.success(),
        "the worker unlocked and exited 0: {status}\n{out}"
    );
    assert!(took < Duration::from_secs(4), "{took:?}\n{out}");
    assert!(out.contains("INTERRUPTED"), "{out}");
    assert_eq!(log.count("done k"), 0);

    // Unlocked, and not counted as a failed attempt.
    let row = t.db.job(id).unwrap().expect("still there");
    assert_eq!(row.locked_by, None, "{row:?}");
    assert_eq!(row.locked_at, None, "{row:?}");
    assert_eq!(row.attempts, 0, "{row:?}");
    assert_eq!(row.failed_at, None, "{row:?}");
    assert_eq!(row.last_error, None, "{row:?}");
    assert_eq!(row.state(t.db.now().unwrap()), JobState::Ready);

    // Another worker takes it at once and performs it (its sleep shortened to keep this quick).
    t.exec("UPDATE delayed_jobs SET handler = replace(handler, '6000', '200')");
    let mut w = spawn_worker(&t, "w", &["work", "--sleep-delay", "0.2"]);
    assert!(
        log.wait_for("done k", Duration::from_secs(15)),
        "{}",
        worker_output(&t, "w")
    );
    signal(&w, libc::SIGTERM);
    assert!(wait_exit(&mut w, Duration::from_secs(30)).success());
    assert_eq!(log.count("start k"), 2);
    assert!(t.db.job(id).unwrap().is_none());
}

fn second_term(backend: Backend) {
    let t = TestDb::new(backend, "secondterm");
    let log = t.log();
    let id = sleeps(&t, &log, "w", 20_000);
    // A worker: TERM starts the graceful stop, a second TERM exits at once.
    let mut w = spawn_worker(
        &t,
        "w",
        &["work", "--sleep-delay", "0.2", "--shutdown-timeout", "30"],
    );
    assert!(log.wait_for("start w", Duration::from_secs(15)));
    signal(&w, libc::SIGTERM);
    assert!(wait_until(Duration::from_secs(5), || worker_output(
        &t, "w"
    )
    .contains("Exiting...")));
    let asked = Instant::now();
    signal(&w, libc::SIGTERM);
    let status = wait_exit(&mut w, Duration::from_secs(5));
    assert!(asked.elapsed() < Duration::from_secs(2));
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{status}");
    assert_eq!(log.count("done w"), 0);
    t.db.delete_jobs(&JobFilter {
        id: Some(id),
        ..JobFilter::default()
    })
    .unwrap();

    // A pool: the second TERM kills its workers at once.
    sleeps(&t, &log, "p", 20_000);
    let mut pool = spawn_worker(
        &t,
        "pool",
        &[
            "start",
            "-n",
            "1",
            "--sleep-delay",
            "0.2",
            "--shutdown-timeout",
            "30",
        ],
    );
    let workers = wait_for_workers(&t, "pool", 1);
    assert!(log.wait_for("start p", Duration::from_secs(15)));
    signal(&pool, libc::SIGTERM);
    assert!(wait_until(Duration::from_secs(5), || worker_output(
        &t, "pool"
    )
    .contains("Exiting...")));
    let asked = Instant::now();
    signal(&pool, libc::SIGTERM);
    let status = wait_exit(&mut pool, Duration::from_secs(5));
    assert!(asked.elapsed() < Duration::from_secs(2));
    assert!(!status.success(), "killing workers is not a clean stop");
    assert!(!alive(workers[0].1), "the worker is gone");
    assert_eq!(log.count("done p"), 0);
}

fn platform_and_forwarded_term(backend: Backend) {
    // Heroku and systemd signal every process: the worker gets the platform's TERM and the
    // pool's forwarded one, and must still finish its job rather than exit at once.
    let t = TestDb::new(backend, "doubleterm");
    let log = t.log();
    sleeps(&t, &log, "k", 2000);
    let mut pool = spawn_worker(&t, "pool", &["start", "-n", "1", "--sleep-delay", "0.2"]);
    let workers = wait_for_workers(&t, "pool", 1);
    assert!(log.wait_for("start k", Duration::from_secs(15)));
    kill(workers[0].1, libc::SIGTERM);
    signal(&pool, libc::SIGTERM);
    let status = wait_exit(&mut pool, Duration::from_secs(30));
    let out = worker_output(&t, "pool");
    assert!(status.success(), "{status}\n{out}");
    assert_eq!(log.count("done k"), 1, "{out}");
    assert!(
        out.contains(&format!("(pid {}) exited with code 0", workers[0].1)),
        "{out}"
    );
}

fn supervisor_death(backend: Backend) {
    let t = TestDb::new(backend, "pooldeath");
    // Output through the pool (no --log-dir): once it dies, its workers write into closed
    // pipes, which must not keep them from stopping.
    let mut pool = spawn_worker(&t, "pool", &["start", "-n", "2", "--sleep-delay", "0.2"]);
    let workers = wait_for_workers(&t, "pool", 2);
    // Past start-up (before it, TERM's default action ends a worker that holds nothing).
    assert!(wait_until(Duration::from_secs(15), || worker_output(
        &t, "pool"
    )
    .matches("Starting job worker")
    .count()
        == 2));
    signal(&pool, libc::SIGKILL);
    wait_exit(&mut pool, Duration::from_secs(5));
    let gone = wait_until(Duration::from_secs(15), || {
        workers.iter().all(|(_, pid)| !alive(*pid))
    });
    assert!(
        gone,
        "workers outlived their pool: {workers:?}\n{}",
        worker_output(&t, "pool")
    );
}

fn stop_and_status(backend: Backend) {
    let t = TestDb::new(backend, "pidfile");
    let pid_file = t.dir.join("run/dj.pid");
    let pid_arg = pid_file.to_str().unwrap();
    let mut pool = spawn_worker(
        &t,
        "pool",
        &[
            "start",
            "-n",
            "1",
            "--sleep-delay",
            "0.2",
            "--pid-file",
            pid_arg,
        ],
    );
    wait_for_workers(&t, "pool", 1);
    let written = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(written.trim(), pid_of(&pool).to_string());

    let out = dj(&t, &["status", "--pid-file", pid_arg]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("running"), "{}", stdout(&out));
    // The pool's worker, as it registered in dj_workers.
    let (worker_name, worker_pid) = pool_workers(&worker_output(&t, "pool"))[0].clone();
    assert!(
        wait_until(Duration::from_secs(10), || {
            let out = dj(&t, &["status", "--pid-file", pid_arg, "--json"]);
            let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            json["workers"]
                .as_array()
                .is_some_and(|w| w.len() == 1 && w[0]["pid"] == worker_pid)
        }),
        "status lists the pool's worker"
    );
    let out = dj(&t, &["status", "--pid-file", pid_arg, "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["running"], true);
    assert_eq!(json["pid"], pid_of(&pool));
    let worker = &json["workers"][0];
    assert!(
        worker["name"].as_str().unwrap().starts_with(&worker_name),
        "{json}"
    );
    assert!(worker["heartbeat_age"].as_f64().unwrap() < 30.0, "{json}");
    let out = dj(&t, &["status", "--pid-file", pid_arg]);
    assert!(stdout(&out).contains("LAST_HEARTBEAT"), "{}", stdout(&out));

    // A second pool on the same pid file refuses to start.
    let out = dj(&t, &["start", "-n", "1", "--pid-file", pid_arg]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already running"), "{}", stderr(&out));

    let out = dj(&t, &["stop", "--pid-file", pid_arg]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("dj pool stopped"), "{}", stdout(&out));
    let status = wait_exit(&mut pool, Duration::from_secs(5));
    assert!(status.success(), "{status}");
    assert!(!pid_file.exists(), "the pid file is removed");

    let out = dj(&t, &["status", "--pid-file", pid_arg]);
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(stdout(&out).contains("not running"), "{}", stdout(&out));
}

fn retry_failed(backend: Backend) {
    let t = TestDb::new(backend, "retryfailed");
    let log = t.log();
    let give_up = |queue: &str| {
        GivesUp { log: log.path() }
            .delay()
            .queue(queue)
            .enqueue(&t.db)
            .unwrap()
    };
    let a = give_up("a");
    let b = give_up("b");
    let out = dj(&t, &["workoff", "--keep-failed"]);
    assert!(!out.status.success());
    assert_eq!(log.count("perform"), 2);
    let failed = JobFilter {
        state: Some(JobState::Failed),
        ..JobFilter::default()
    };
    assert_eq!(t.db.count_jobs(&failed).unwrap(), 2);

    // Off a terminal, a bulk retry needs --yes, and changes nothing without it.
    let out = dj(&t, &["retry", "--failed"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert_eq!(t.db.count_jobs(&failed).unwrap(), 2);

    let out = dj(&t, &["retry", "--failed", "--queue", "a", "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "retried 1 job(s)");
    let row = t.db.job(a).unwrap().unwrap();
    assert_eq!((row.failed_at, row.attempts), (None, 0), "{row:?}");
    assert_eq!(row.state(t.db.now().unwrap()), JobState::Ready);
    assert!(t.db.job(b).unwrap().unwrap().failed_at.is_some());

    let out = dj(&t, &["retry", &b.to_string(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["retried"], 1);

    // Both run again.
    let out = dj(&t, &["workoff", "--keep-failed"]);
    assert!(!out.status.success());
    assert_eq!(log.count("perform"), 4);
}

fn stats_json(backend: Backend) {
    let t = TestDb::new(backend, "statsjson");
    let log = t.log();
    let record = |queue: Option<&str>| {
        let job = Record {
            log: log.path(),
            key: "x".into(),
        }
        .delay();
        match queue {
            Some(q) => job.queue(q).enqueue(&t.db).unwrap(),
            None => job.enqueue(&t.db).unwrap(),
        }
    };
    // Queue "a": 2 ready, 1 scheduled, 1 running, 1 failed; no queue: 1 ready.
    record(Some("a"));
    record(Some("a"));
    Record {
        log: log.path(),
        key: "later".into(),
    }
    .delay()
    .queue("a")
    .run_in(Duration::from_secs(3600))
    .enqueue(&t.db)
    .unwrap();
    let running = record(Some("a"));
    let failed = record(Some("a"));
    record(None);
    t.exec(&format!(
        "UPDATE delayed_jobs SET locked_at = run_at, locked_by = 'dj.1 host:elsewhere pid:1' WHERE id = {running}"
    ));
    t.exec(&format!(
        "UPDATE delayed_jobs SET failed_at = run_at WHERE id = {failed}"
    ));

    let out = dj(&t, &["stats", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let queues = json["queues"].as_array().expect("an array of queues");
    assert_eq!(
        json["workers"],
        serde_json::json!([]),
        "no worker registered"
    );
    assert_eq!(queues.len(), 2, "{json}");
    let find = |name: Option<&str>| {
        queues
            .iter()
            .find(|q| q["queue"].as_str() == name)
            .unwrap_or_else(|| panic!("queue {name:?} in {json}"))
    };
    let counts = |q: &serde_json::Value| {
        ["ready", "scheduled", "running", "failed"].map(|k| q[k].as_i64().unwrap())
    };
    assert_eq!(counts(find(Some("a"))), [2, 1, 1, 1]);
    assert_eq!(counts(find(None)), [1, 0, 0, 0]);
    assert!(find(Some("a"))["oldest_ready_age"].as_f64().unwrap() >= 0.0);

    // The table says the same.
    let out = dj(&t, &["stats"]);
    let text = stdout(&out);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "QUEUE",
            "READY",
            "SCHEDULED",
            "RUNNING",
            "FAILED",
            "OLDEST_READY"
        ]
    );
    for line in lines.by_ref().take_while(|l| !l.is_empty()) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        let queue = match cells[0] {
            "(none)" => None,
            q => Some(q),
        };
        let table: Vec<i64> = cells[1..5].iter().map(|c| c.parse().unwrap()).collect();
        assert_eq!(table, counts(find(queue)), "{text}");
    }
    assert_eq!(lines.next(), Some("No workers registered."), "{text}");
}

fn unlock_stale(backend: Backend) {
    let t = TestDb::new(backend, "unlockstale");
    let log = t.log();
    let host = dj::worker::hostname();
    let dead = {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    };
    let job = |key: &str| {
        Record {
            log: log.path(),
            key: key.into(),
        }
        .delay()
        .enqueue(&t.db)
        .unwrap()
    };
    let lock = |id: i64, by: &str| {
        t.exec(&format!(
            "UPDATE delayed_jobs SET locked_at = created_at, locked_by = '{by}' WHERE id = {id}"
        ));
    };
    // Another host's worker that stopped answering long ago (older than --max-run-time).
    let old_elsewhere = job("old");
    lock(old_elsewhere, "host:elsewhere pid:2");
    std::thread::sleep(Duration::from_millis(1500));
    let dead_here = job("dead");
    lock(dead_here, &format!("dj.1 host:{host} pid:{dead}"));
    let alive_here = job("alive");
    lock(
        alive_here,
        &format!("dj.2 host:{host} pid:{}", std::process::id()),
    );
    let recent_elsewhere = job("recent");
    lock(recent_elsewhere, "host:elsewhere pid:1");

    let out = dj(
        &t,
        &["unlock", "--stale", "--heartbeat-timeout", "1s", "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["unlocked"], 2, "{json}");
    let locked = |id: i64| t.db.job(id).unwrap().unwrap().locked_by.is_some();
    assert!(!locked(dead_here), "the dead worker's row is released");
    assert!(!locked(old_elsewhere), "the expired row is released");
    assert!(locked(alive_here), "a live worker keeps its row");
    assert!(locked(recent_elsewhere), "a recent lock elsewhere is kept");
    assert_eq!(t.db.job(dead_here).unwrap().unwrap().attempts, 0);
}

fn bulk_delete_needs_yes(backend: Backend) {
    let t = TestDb::new(backend, "bulkdelete");
    let log = t.log();
    for key in ["a", "b", "c"] {
        Record {
            log: log.path(),
            key: key.into(),
        }
        .delay()
        .enqueue(&t.db)
        .unwrap();
    }
    let all = JobFilter::default();
    for args in [&["delete", "--state", "ready"][..], &["clear"][..]] {
        let out = dj(&t, args);
        assert!(!out.status.success(), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains("3 job(s)") && err.contains("--yes"),
            "{args:?}: {err}"
        );
        assert_eq!(
            t.db.count_jobs(&all).unwrap(),
            3,
            "{args:?} deleted nothing"
        );
    }
    let out = dj(&t, &["delete", "--state", "ready", "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "deleted 3 job(s)");
    assert_eq!(t.db.count_jobs(&all).unwrap(), 0);
}

fn json_logs(backend: Backend) {
    let t = TestDb::new(backend, "jsonlogs");
    let log = t.log();
    Record {
        log: log.path(),
        key: "j".into(),
    }
    .delay()
    .enqueue(&t.db)
    .unwrap();
    let out = dj(&t, &["--log-format", "json", "workoff"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let messages: Vec<String> = stdout(&out)
        .lines()
        .map(|line| {
            let value: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            value["message"].as_str().expect("a message").to_owned()
        })
        .collect();
    for wording in [
        "] Starting job worker",
        "Job Record (id=",
        "COMPLETED after",
        "1 jobs processed at",
        "No more jobs available. Exiting",
    ] {
        assert!(
            messages.iter().any(|m| m.contains(wording)),
            "{wording} in {messages:?}"
        );
    }

    // The pool's own lines and its workers' lines are JSON too; worker lines say which worker.
    let mut pool = spawn_worker(
        &t,
        "pool",
        &[
            "start",
            "-n",
            "1",
            "--sleep-delay",
            "0.2",
            "--log-format",
            "json",
        ],
    );
    let started = wait_until(Duration::from_secs(15), || {
        worker_output(&t, "pool").contains("Starting job worker")
    });
    stop_pool(&t, &mut pool, "pool");
    assert!(started);
    let out = worker_output(&t, "pool");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let start = lines
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.ends_with("Starting job worker"))
        })
        .expect("the worker's start line");
    assert!(
        start["worker"].as_str().unwrap().starts_with("dj.1 pid:"),
        "{start}"
    );
}

fn jobs_limit(backend: Backend) {
    let t = TestDb::new(backend, "jobslimit");
    let log = t.log();
    dj::enqueue_many(
        &t.db,
        (0..7).map(|i| Record {
            log: log.path(),
            key: i.to_string(),
        }),
    )
    .unwrap();
    let note = "... 2 more; use --limit 7 to list them all";

    let out = dj(&t, &["jobs", "--limit", "5"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 5 + 1, "header, 5 rows, the note:\n{text}");
    assert_eq!(lines[6], note);

    let all = stdout(&dj(&t, &["jobs", "--limit", "7"]));
    assert_eq!(all.lines().count(), 1 + 7, "{all}");
    assert!(!all.contains("more;"), "{all}");

    // --json: stdout stays one JSON object (version 1); the note goes to stderr.
    let out = dj(&t, &["jobs", "--limit", "5", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(rows["version"], 1, "{rows}");
    assert_eq!(rows["jobs"].as_array().map(Vec::len), Some(5), "{rows}");
    assert_eq!(stderr(&out).trim(), note);
}

/// `jobs --name SendWelcome` for a `#[dj::job] fn send_welcome` (stored as `send_welcome`)
/// must not pass for an empty queue: stderr names the registered names that are close.
fn unknown_name_hint(backend: Backend) {
    let t = TestDb::new(backend, "namehint");
    let log = t.log();
    let add = Add {
        log: log.path(),
        a: 1,
        b: 2,
    };
    add.delay().enqueue(&t.db).unwrap();
    let hint = "No job named `Add` is registered in this worker; did you mean `add`?";

    let out = dj(&t, &["jobs", "--name", "Add"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 1, "the header alone");
    assert_eq!(stderr(&out).trim(), hint);

    let out = dj(&t, &["jobs", "--name", "Add", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(rows["jobs"].as_array().map(Vec::len), Some(0), "{rows}");
    assert_eq!(stderr(&out).trim(), hint);

    let out = dj(&t, &["jobs", "--name", "add"]);
    assert!(stdout(&out).contains("add"), "{}", stdout(&out));
    assert_eq!(stderr(&out), "", "a match needs no hint");

    // A registered name with no rows, or a name with rows of its own: no hint.
    let out = dj(&t, &["jobs", "--name", "async_record"]);
    assert_eq!(stderr(&out), "");

    // Nothing close: the registered names are listed.
    let out = dj(&t, &["delete", "--name", "Nonesuch", "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.starts_with("No job named `Nonesuch` is registered in this worker (registered: ")
            && text.contains("add, "),
        "{text}"
    );
    let out = dj(&t, &["retry", "--failed", "--name", "Add", "--yes"]);
    assert_eq!(stderr(&out).trim(), hint);
    assert_eq!(
        t.db.count_jobs(&JobFilter::default()).unwrap(),
        1,
        "nothing deleted"
    );
}

/// `--json` is an interface (README, "Machine-readable output"): every command prints one
/// object with `"version": 1` and the fields documented for it; a row's handler is an object.
fn json_shapes(backend: Backend) {
    let t = TestDb::new(backend, "json_shapes");
    let log = t.log();
    let id = Record {
        log: log.path(),
        key: "shape".into(),
    }
    .delay()
    .queue("a")
    .enqueue(&t.db)
    .unwrap();
    let parse = |args: &[&str]| -> serde_json::Value {
        let out = dj(&t, args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?} prints JSON ({e}): {}", stdout(&out)));
        assert_eq!(json["version"], 1, "{args:?}: {json}");
        json
    };
    let id_text = id.to_string();
    let jobs = parse(&["jobs", "--json"]);
    let row = &jobs["jobs"][0];
    assert_eq!(row["id"], id, "{jobs}");
    assert_eq!(row["handler"]["job"], "Record", "{row}");
    assert_eq!(row["handler"]["args"]["key"], "shape", "{row}");
    for field in [
        "state",
        "name",
        "queue",
        "priority",
        "attempts",
        "run_at",
        "locked_at",
        "locked_by",
        "failed_at",
        "last_error",
        "created_at",
        "updated_at",
        "max_run_time",
    ] {
        assert!(row.get(field).is_some(), "`{field}` in {row}");
    }
    assert_eq!(parse(&["show", &id_text, "--json"])["job"], *row);
    let stats = parse(&["stats", "--json"]);
    for list in ["queues", "workers", "paused"] {
        assert!(stats[list].is_array(), "`{list}` in {stats}");
    }
    assert!(parse(&["cron", "--json"])["schedules"].is_array());
    assert_eq!(parse(&["retry", &id_text, "--json"])["retried"], 1);
    assert_eq!(
        parse(&["delete", &id_text, "--yes", "--json"])["deleted"],
        1
    );
}
