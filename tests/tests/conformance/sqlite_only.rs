//! What only SQLite has: files that several processes open at once, files in a read-only
//! place, and a full disk.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use dj::{Job, JobFilter, JobId};
use dj_tests::jobs::{Gated, Record};
use dj_tests::support::{in_ci, Backend, PerformLog, TestDb};

use crate::processes::{signal, spawn_bin_at, wait_exit, worker_output};
use crate::Case;

pub const CASES: &[Case] = &[
    (
        "processes_opening_a_new_file_at_once_all_succeed",
        concurrent_first_open,
    ),
    (
        "threads_opening_a_new_file_at_once_all_succeed",
        concurrent_first_open_threads,
    ),
    (
        "read_commands_work_on_a_read_only_file_and_a_worker_refuses_it",
        read_only_place,
    ),
    (
        "read_commands_work_in_a_read_only_directory_and_a_worker_refuses_it",
        read_only_directory,
    ),
    (
        "full_disk_fails_every_enqueue_loudly_and_the_worker_waits_it_out",
        full_disk,
    ),
    (
        "a_failed_mix_of_unique_and_plain_jobs_leaves_nothing_on_every_target",
        mixed_batch_all_or_none,
    ),
];

const WORKER: &str = env!("CARGO_BIN_EXE_dj-test-worker");

/// Each round: six `migrate` processes on a file that does not exist yet. The first opener
/// switches the new file to WAL, which once made some of the others fail with "database is
/// locked". Each process waits behind `read` in a shell until all six are started, so that
/// they open the file together.
fn concurrent_first_open(backend: Backend) {
    let t = TestDb::unmigrated(backend, "firstopen");
    for round in 0..10 {
        let url = format!("sqlite:{}", t.dir.join(format!("new-{round}.db")).display());
        let mut children: Vec<(String, Child)> = (0..6)
            .map(|i| {
                let label = format!("r{round}-{i}");
                let out = std::fs::File::create(t.dir.join(format!("{label}.log"))).unwrap();
                let child = Command::new("sh")
                    .args(["-c", r#"read go; exec "$@""#, "sh", WORKER, "migrate"])
                    .env("DATABASE_URL", &url)
                    .stdin(Stdio::piped())
                    .stdout(out.try_clone().unwrap())
                    .stderr(out)
                    .spawn()
                    .expect("run sh");
                (label, child)
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        for (_, child) in &mut children {
            child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        }
        for (label, child) in &mut children {
            let status = wait_exit(child, Duration::from_secs(60));
            assert!(
                status.success(),
                "round {round}, {label}: {status}\n{}",
                worker_output(&t, label)
            );
        }
    }
}

/// The same race between threads, which a barrier lines up more tightly than processes.
fn concurrent_first_open_threads(backend: Backend) {
    let t = TestDb::unmigrated(backend, "firstopenthreads");
    for round in 0..100 {
        let url = format!("sqlite:{}", t.dir.join(format!("new-{round}.db")).display());
        let start = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        let db = dj::Db::open(&url).unwrap();
                        start.wait();
                        db.migrate().map(drop)
                    })
                })
                .collect();
            for (i, thread) in threads.into_iter().enumerate() {
                let result = thread.join().expect("no panic");
                assert!(result.is_ok(), "round {round}, thread {i}: {result:?}");
            }
        });
    }
}

/// Runs `dj-test-worker ARGS` on `url` with `dir` mounted read-only for it alone: a mount
/// namespace of its own, where `dir` is bind-mounted onto itself and remounted read-only.
/// (The tests run as root, which file permission bits do not stop.)
fn in_read_only_dir(t: &TestDb, dir: &Path, url: &str, label: &str, args: &[&str]) -> Child {
    let out = std::fs::File::create(t.dir.join(format!("{label}.log"))).expect("log file");
    let dir = dir.display().to_string();
    Command::new("unshare")
        .args(["--mount", "sh", "-c"])
        .arg(r#"mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@""#)
        .arg(&dir)
        .arg(WORKER)
        .args(args)
        .env("DATABASE_URL", url)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup log"))
        .stderr(out)
        .spawn()
        .expect("run unshare (util-linux)")
}

fn read_only_place(backend: Backend) {
    let t = TestDb::unmigrated(backend, "readonly");
    let dir = t.dir.join("ro");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("jobs.db");
    let url = format!("sqlite:{}", file.display());
    let log = t.log();
    let id = {
        let db = dj::Db::open(&url).unwrap();
        db.migrate().unwrap();
        Record {
            log: log.path(),
            key: "ro".into(),
        }
        .delay()
        .enqueue(&db)
        .unwrap()
    };
    // The last connection closed: SQLite removed the `-wal` and `-shm` files, which a
    // read-only directory cannot get back.
    assert!(!dir.join("jobs.db-wal").exists() && !dir.join("jobs.db-shm").exists());

    // First make sure the place really is read-only for the commands.
    let mut probe = Command::new("unshare")
        .args(["--mount", "sh", "-c"])
        .arg(r#"mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && ! touch "$0/x""#)
        .arg(&dir)
        .stderr(Stdio::null())
        .spawn()
        .expect("run unshare (util-linux)");
    let status = wait_exit(&mut probe, Duration::from_secs(20));
    assert!(
        status.success(),
        "a read-only bind mount needs root: {status}"
    );

    let id_text = id.to_string();
    for (label, args, shows) in [
        ("jobs", vec!["jobs"], "Record"),
        ("show", vec!["show", id_text.as_str()], "Record"),
        ("stats", vec!["stats"], "READY"),
        ("schema", vec!["schema"], "CREATE TABLE"),
    ] {
        let mut child = in_read_only_dir(&t, &dir, &url, label, &args);
        let status = wait_exit(&mut child, Duration::from_secs(30));
        let out = worker_output(&t, label);
        assert!(status.success(), "{label}: {status}\n{out}");
        assert!(out.contains(shows), "{label}:\n{out}");
    }

    for command in ["workoff", "work"] {
        let mut child = in_read_only_dir(&t, &dir, &url, command, &[command]);
        let status = wait_exit(&mut child, Duration::from_secs(30));
        let out = worker_output(&t, command);
        assert!(!status.success(), "{command}: {status}\n{out}");
        assert!(
            out.contains(&format!("{url} is read-only for this process"))
                && out.contains("give this user write access"),
            "{command}:\n{out}"
        );
        assert!(!out.contains("Starting job worker"), "{command}:\n{out}");
    }

    // While a writer has the file open its `-wal` and `-shm` files exist, and the read
    // commands read through them.
    let writer = dj::Db::open(&url).unwrap();
    assert_eq!(writer.count_jobs(&dj::JobFilter::default()).unwrap(), 1);
    assert!(dir.join("jobs.db-shm").exists());
    let mut child = in_read_only_dir(&t, &dir, &url, "jobs-open", &["jobs"]);
    let status = wait_exit(&mut child, Duration::from_secs(30));
    let out = worker_output(&t, "jobs-open");
    assert!(
        status.success() && out.contains("Record"),
        "{status}\n{out}"
    );
    assert_eq!(log.lines().len(), 0, "nothing was performed");
}

/// The file can be written but its directory cannot, so SQLite cannot create the `-wal` and
/// `-shm` files it needs: the commands run as `nobody` (root would pass the permission
/// check), on a file of mode 666 in a directory of root's, mode 755.
fn read_only_directory(backend: Backend) {
    if !is_root("run commands as another user") {
        return;
    }
    let t = TestDb::unmigrated(backend, "readonlydir");
    let dir = t.dir.join("rodir");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("jobs.db");
    let url = format!("sqlite:{}", file.display());
    let log = t.log();
    let id = {
        let db = dj::Db::open(&url).unwrap();
        db.migrate().unwrap();
        Record {
            log: log.path(),
            key: "rodir".into(),
        }
        .delay()
        .enqueue(&db)
        .unwrap()
    };
    assert!(!dir.join("jobs.db-wal").exists() && !dir.join("jobs.db-shm").exists());
    chmod(&t.dir, 0o755);
    chmod(&dir, 0o755);
    chmod(&file, 0o666);

    let id_text = id.to_string();
    let (status, out, err) = as_nobody(&t, &url, "jobs", &["jobs", "--json"]);
    assert!(status.success(), "jobs --json: {status}\n{out}\n{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).expect("jobs --json prints JSON");
    assert_eq!(rows["jobs"][0]["id"], serde_json::json!(id), "{out}");
    for (args, shows) in [
        (vec!["show", id_text.as_str()], "Record"),
        (vec!["stats"], "READY"),
    ] {
        let (status, out, err) = as_nobody(&t, &url, args[0], &args);
        assert!(status.success(), "{args:?}: {status}\n{out}\n{err}");
        assert!(out.contains(shows), "{args:?}:\n{out}");
    }

    for command in ["workoff", "work"] {
        let started = Instant::now();
        let (status, out, err) = as_nobody(&t, &url, command, &[command]);
        assert!(!status.success(), "{command}: {status}\n{out}\n{err}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{command} took {:?} to give up\n{err}",
            started.elapsed()
        );
        let named = format!(
            "{url} is read-only for this process: its directory {} cannot be written",
            dir.display()
        );
        assert!(
            err.contains(&named)
                && err.contains("jobs.db-wal")
                && err.contains(&format!("give this user write access to {}", dir.display())),
            "{command}:\n{err}"
        );
        assert!(!err.contains("Starting job worker"), "{command}:\n{err}");
    }
    assert_eq!(log.lines().len(), 0, "nothing was performed");
    assert_eq!(
        dj::Db::open(&url)
            .unwrap()
            .count_jobs(&JobFilter::default())
            .unwrap(),
        1,
        "the job is still there"
    );
}

/// Whether the test runs as root; if not, says which step needs it and skips, except in CI.
fn is_root(to: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(!in_ci(), "this case needs root to {to}, and CI=true");
    eprintln!("skipped: this case needs root to {to}");
    false
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs `dj-test-worker ARGS` on `url` as the user `nobody`, for at most 30 s: its status,
/// standard output and standard error.
fn as_nobody(t: &TestDb, url: &str, label: &str, args: &[&str]) -> (ExitStatus, String, String) {
    let out_path = t.dir.join(format!("{label}.out"));
    let err_path = t.dir.join(format!("{label}.err"));
    let mut child = Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            WORKER,
        ])
        .args(args)
        .env("DATABASE_URL", url)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap())
        .spawn()
        .expect("run setpriv (util-linux)");
    let status = wait_exit(&mut child, Duration::from_secs(30));
    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    (status, read(&out_path), read(&err_path))
}

/// A tmpfs of its own at `dir`, for one test: detached when dropped, also when the test fails.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(dir).unwrap();
        let text = |s: &str| CString::new(s).unwrap();
        let target = CString::new(dir.as_os_str().as_bytes()).unwrap();
        let options = text(&format!("size={size},mode=0755"));
        // SAFETY: NUL-terminated strings that outlive the call.
        let rc = unsafe {
            libc::mount(
                text("tmpfs").as_ptr(),
                target.as_ptr(),
                text("tmpfs").as_ptr(),
                0,
                options.as_ptr().cast(),
            )
        };
        assert_eq!(
            rc,
            0,
            "mount a tmpfs at {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        );
        SmallDisk {
            dir: dir.to_owned(),
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let target = CString::new(self.dir.as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path that outlives the call.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

/// A file that takes all but the last `leave` bytes of the filesystem holding `dir`.
struct Filler {
    path: PathBuf,
}

impl Filler {
    fn fill(dir: &Path, leave: u64) -> Filler {
        let path = dir.join("filler");
        let mut file = File::create(&path).expect("create the filler");
        let chunk = vec![0xa5u8; 64 * 1024];
        let mut size = chunk.len();
        loop {
            match file.write(&chunk[..size]) {
                Ok(_) => {}
                // Then smaller writes, down to the last bytes of the last page.
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && size > 512 => size = 512,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("fill {}: {e}", path.display()),
            }
        }
        let full = file.metadata().unwrap().len();
        file.set_len(full.saturating_sub(leave)).unwrap();
        Filler { path }
    }

    fn remove(self) {
        std::fs::remove_file(&self.path).expect("remove the filler");
    }
}

/// Every way to enqueue onto a SQLite file: the `Db` (one job, a unique one, and
/// `enqueue_many`), and the caller's rusqlite connection (autocommit, and its own
/// transaction), sqlx connection and diesel connection.
struct Enqueuers {
    url: String,
    db: dj::Db,
    rusqlite: rusqlite::Connection,
    runtime: tokio::runtime::Runtime,
    sqlx: sqlx::SqliteConnection,
    diesel: diesel::SqliteConnection,
}

const WAYS: [&str; 7] = [
    "Db",
    "enqueue_many on Db",
    "unique job on Db",
    "rusqlite connection",
    "rusqlite transaction",
    "sqlx connection",
    "diesel connection",
];

impl Enqueuers {
    fn open(path: &Path) -> Enqueuers {
        use diesel::Connection as _;
        use sqlx::Connection as _;
        let url = format!("sqlite:{}", path.display());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(Duration::from_secs(10));
        let sqlx = runtime
            .block_on(sqlx::SqliteConnection::connect_with(&options))
            .unwrap();
        let rusqlite = rusqlite::Connection::open(path).unwrap();
        rusqlite.busy_timeout(Duration::from_secs(10)).unwrap();
        Enqueuers {
            db: dj::Db::open(&url).unwrap(),
            url,
            rusqlite,
            runtime,
            sqlx,
            diesel: diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap(),
        }
    }

    /// Enqueues `Record` jobs keyed `KEY` (or `KEY.i` for a batch) the `way`th way: the
    /// acknowledged ids with their keys, or the error's text.
    fn enqueue(
        &mut self,
        way: usize,
        log: &PerformLog,
        key: &str,
    ) -> Result<Vec<(JobId, String)>, String> {
        let job = |key: String| Record {
            log: log.path(),
            key,
        };
        let one = |id: JobId| vec![(id, key.to_owned())];
        let text = |e: dj::Error| e.to_string();
        match WAYS[way] {
            "Db" => job(key.into())
                .delay()
                .enqueue(&self.db)
                .map(one)
                .map_err(text),
            "unique job on Db" => job(key.into())
                .delay()
                .unique(key)
                .enqueue(&self.db)
                .map(one)
                .map_err(text),
            "enqueue_many on Db" => {
                let keys: Vec<String> = (0..3).map(|i| format!("{key}.{i}")).collect();
                let ids =
                    dj::enqueue_many(&self.db, keys.iter().cloned().map(job)).map_err(text)?;
                Ok(ids.into_iter().zip(keys).collect())
            }
            "rusqlite connection" => job(key.into())
                .delay()
                .enqueue(&self.rusqlite)
                .map(one)
                .map_err(text),
            "rusqlite transaction" => {
                let tx = self.rusqlite.transaction().map_err(|e| e.to_string())?;
                let id = job(key.into()).delay().enqueue(&tx).map_err(text)?;
                // The caller's commit, whose error is the caller's to read.
                tx.commit()
                    .map_err(|e| format!("the caller's commit: {e}"))?;
                Ok(one(id))
            }
            "sqlx connection" => self
                .runtime
                .block_on(job(key.into()).delay().enqueue_async(&mut self.sqlx))
                .map(one)
                .map_err(text),
            "diesel connection" => job(key.into())
                .delay()
                .enqueue(&mut self.diesel)
                .map(one)
                .map_err(text),
            other => unreachable!("{other}"),
        }
    }

    /// Enqueues round the ways until the disk is full: until every way has failed three
    /// rounds running (a round starts with the way after the last round's first). Every
    /// error must say that the disk is full and name the database. Returns the acknowledged
    /// ids with their keys.
    fn until_full(&mut self, log: &PerformLog, prefix: &str) -> BTreeMap<JobId, String> {
        let mut acked: Vec<(JobId, String)> = Vec::new();
        let mut failed_rounds = 0;
        let mut failures = [0; WAYS.len()];
        for round in 0.. {
            let mut succeeded = Vec::new();
            for way in (0..WAYS.len()).map(|i| (i + round) % WAYS.len()) {
                match self.enqueue(way, log, &format!("{prefix}-{round}-{way}")) {
                    Ok(ids) => {
                        succeeded.push(WAYS[way]);
                        acked.extend(ids);
                    }
                    Err(e) => {
                        failures[way] += 1;
                        self.assert_clear(way, &e);
                        if failures[way] == 1 {
                            eprintln!("{}: {e}", WAYS[way]);
                        }
                    }
                }
            }
            assert!(
                round < 200 || succeeded.is_empty(),
                "{} enqueues acknowledged on an 8 MB disk; these still return Ok: {succeeded:?}",
                acked.len()
            );
            failed_rounds = if succeeded.is_empty() {
                failed_rounds + 1
            } else {
                0
            };
            if failed_rounds == 3 {
                break;
            }
        }
        eprintln!(
            "{prefix}: {} jobs acknowledged before every way failed {failed_rounds} rounds running",
            acked.len()
        );
        let distinct: BTreeMap<JobId, String> = acked.iter().cloned().collect();
        assert_eq!(
            distinct.len(),
            acked.len(),
            "two acknowledged enqueues returned one id: {acked:?}"
        );
        distinct
    }

    /// An error on a full disk says so and names the database.
    fn assert_clear(&self, way: usize, e: &str) {
        let named: &[&str] = match WAYS[way] {
            "sqlx connection" | "diesel connection" => &["the caller's database"],
            "rusqlite transaction" => &[&self.url, "the caller's commit"],
            _ => &[&self.url],
        };
        assert!(
            e.contains("full") && named.iter().any(|name| e.contains(name)),
            "{}: an unclear error on a full disk: {e}",
            WAYS[way]
        );
    }
}

/// The rows of the file, as id and handler.
fn stored(url: &str) -> BTreeMap<JobId, String> {
    dj::Db::open(url)
        .unwrap()
        .jobs(&JobFilter::default())
        .unwrap()
        .into_iter()
        .map(|row| (row.id, row.handler))
        .collect()
}

/// Every acknowledged id is a row holding its own job, and no failed enqueue left one.
fn assert_stored(url: &str, acked: &BTreeMap<JobId, String>, also: &BTreeSet<JobId>) {
    let rows = stored(url);
    for (id, key) in acked {
        let handler = rows
            .get(id)
            .unwrap_or_else(|| panic!("job {id} ({key}) was acknowledged but is not stored"));
        assert!(
            handler.contains(&format!("\"{key}\"")),
            "row {id} holds {handler}, not {key}"
        );
    }
    let unacked: Vec<&JobId> = rows
        .keys()
        .filter(|id| !acked.contains_key(id) && !also.contains(id))
        .collect();
    assert!(unacked.is_empty(), "rows whose enqueue failed: {unacked:?}");
}

/// An 8 MB tmpfs filled to its last byte. Every enqueue fails with an error that names the
/// full disk, and each one that returned `Ok` is a row of its own once room is made: none
/// is lost, none shares an id. Then a worker process runs across a full disk (its outcome
/// writes and claims fail and are retried) and, once room comes back, performs every
/// acknowledged job exactly once.
fn full_disk(backend: Backend) {
    if !is_root("mount a small tmpfs") {
        return;
    }
    let t = TestDb::unmigrated(backend, "fulldisk");
    let disk = SmallDisk::mount(&t.dir.join("disk"), "8m");
    let path = disk.dir.join("jobs.db");
    let url = format!("sqlite:{}", path.display());
    dj::Db::open(&url).unwrap().migrate().unwrap();
    let log = t.log();
    let mut enqueue = Enqueuers::open(&path);
    // Every connection maps the `-shm` file while there is room (what a running app has
    // done long before its disk fills).
    let mut first = BTreeMap::new();
    for way in 0..WAYS.len() {
        first.extend(enqueue.enqueue(way, &log, &format!("warm-{way}")).unwrap());
    }

    // No worker: what the enqueues acknowledged is what is stored. The disk is full but
    // for a few pages, which the first enqueues take.
    let filler = Filler::fill(&disk.dir, 64 * 1024);
    first.extend(enqueue.until_full(&log, "a"));
    filler.remove();
    assert_stored(&url, &first, &BTreeSet::new());

    // Two jobs hold the worker's two slots until the gate opens.
    let gate = t.dir.join("gate");
    let gated: BTreeSet<JobId> = ["g1", "g2"]
        .into_iter()
        .map(|key| {
            Gated {
                log: log.path(),
                key: key.into(),
                gate: gate.display().to_string(),
            }
            .delay()
            .priority(-10)
            .enqueue(&enqueue.db)
            .unwrap()
        })
        .collect();
    let mut worker = spawn_bin_at(
        crate::processes::WORKER,
        &t,
        "worker",
        &url,
        &[
            "work",
            "--concurrency",
            "2",
            "--read-ahead",
            "0",
            "--sleep-delay",
            "0.2",
        ],
    );
    assert!(
        log.wait_for("start g1", Duration::from_secs(30))
            && log.wait_for("start g2", Duration::from_secs(30)),
        "{}",
        worker_output(&t, "worker")
    );

    // The disk fills while they run; then they finish, and their outcomes cannot be written.
    let filler = Filler::fill(&disk.dir, 64 * 1024);
    let second = enqueue.until_full(&log, "b");
    assert_stored(
        &url,
        &second,
        &first.keys().chain(&gated).copied().collect(),
    );
    File::create(&gate).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !worker_output(&t, "worker").contains(&format!("the disk holding {url} is full")) {
        assert!(
            Instant::now() < deadline,
            "the worker met no full disk:\n{}",
            worker_output(&t, "worker")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        worker.try_wait().unwrap().is_none(),
        "the worker exited on a full disk:\n{}",
        worker_output(&t, "worker")
    );

    // Room again: every acknowledged job is performed, once.
    filler.remove();
    let deadline = Instant::now() + Duration::from_secs(60);
    while enqueue.db.count_jobs(&JobFilter::default()).unwrap() > 0 {
        assert!(
            Instant::now() < deadline,
            "jobs left: {:?}\n{}",
            stored(&url).keys(),
            worker_output(&t, "worker")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let performed = log.lines();
    for key in first
        .values()
        .chain(second.values())
        .map(String::as_str)
        .chain(["g1", "g2"])
    {
        let times = performed
            .iter()
            .filter(|l| **l == format!("perform {key}"))
            .count();
        assert_eq!(times, 1, "{key} performed {times} times");
    }
    signal(&worker, libc::SIGTERM);
    let status = wait_exit(&mut worker, Duration::from_secs(30));
    assert!(
        status.success(),
        "{status}\n{}",
        worker_output(&t, "worker")
    );
    drop(enqueue);
    drop(disk);
}

/// A batch of plain and unique jobs whose last insert fails in the database (a trigger
/// refuses it) leaves no row, onto every SQLite target: the pool, a rusqlite, sqlx or diesel
/// connection in autocommit, and inside the caller's open transaction, where the batch is
/// undone and the caller's own earlier job is kept (it commits).
fn mixed_batch_all_or_none(backend: Backend) {
    let t = TestDb::new(backend, "mixedbatch");
    rusqlite::Connection::open(t.sqlite_path())
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER refuse_marked BEFORE INSERT ON delayed_jobs \
             WHEN NEW.handler LIKE '%refused%' BEGIN SELECT RAISE(ABORT, 'refused'); END",
        )
        .unwrap();
    let job = |key: &str| Record {
        log: "/dev/null".into(),
        key: key.into(),
    };
    let batch = || {
        vec![
            job("plain 1").delay(),
            job("unique 1").delay().unique("mixed 1"),
            job("plain 2").delay(),
            job("unique 2").delay().unique("mixed 2"),
            job("refused").delay(),
        ]
    };
    let left = |target: &str, expected: i64| {
        let n = t.db.count_jobs(&JobFilter::default()).unwrap();
        assert_eq!(n, expected, "{target}: rows left after the failed batch");
        t.db.delete_jobs(&JobFilter::default()).unwrap();
    };

    assert!(dj::enqueue_many_outcomes(&t.db, batch()).is_err());
    left("the pool", 0);

    let mut conn = rusqlite::Connection::open(t.sqlite_path()).unwrap();
    assert!(dj::enqueue_many_outcomes(&conn, batch()).is_err());
    left("a rusqlite connection", 0);
    let tx = conn.transaction().unwrap();
    job("kept").delay().enqueue(&tx).unwrap();
    assert!(dj::enqueue_many_outcomes(&tx, batch()).is_err());
    tx.commit().unwrap();
    left("a rusqlite transaction", 1);

    {
        use diesel::Connection as _;
        let path = t.sqlite_path();
        let mut conn = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        assert!(dj::enqueue_many_outcomes(&mut conn, batch()).is_err());
        left("a diesel connection", 0);
        conn.transaction(|conn| {
            job("kept").delay().enqueue(&mut *conn).unwrap();
            assert!(dj::enqueue_many_outcomes(&mut *conn, batch()).is_err());
            diesel::QueryResult::Ok(())
        })
        .unwrap();
        left("a diesel transaction", 1);
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use sqlx::Connection as _;
        assert!(dj::enqueue_many_outcomes_async(&t.db, batch())
            .await
            .is_err());
        left("the pool, async", 0);
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(t.sqlite_path())
            .busy_timeout(Duration::from_secs(10));
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        assert!(dj::enqueue_many_outcomes_async(&mut conn, batch())
            .await
            .is_err());
        left("a sqlx connection", 0);
        let mut tx = conn.begin().await.unwrap();
        job("kept").delay().enqueue_async(&mut tx).await.unwrap();
        assert!(dj::enqueue_many_outcomes_async(&mut tx, batch())
            .await
            .is_err());
        tx.commit().await.unwrap();
        left("a sqlx transaction", 1);
    });
}
