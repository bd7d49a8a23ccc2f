//! Recurring jobs: an every-second schedule run by 4 worker processes, one of them SIGKILLed
//! mid-way, gives exactly one job per fire time and none missing; a missed window is caught
//! up once or skipped; schedules from code are registered and listed by `worker cron`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dj::{JobFilter, Missed, Schedule};
use dj_tests::jobs::{Record, Sleeps, Tick};
use dj_tests::support::{Backend, TestDb};

use crate::operations::wait_until;
use crate::pause::cli;
use crate::processes::{signal, spawn_worker, wait_exit, worker_output};
use crate::Case;

pub const CASES: &[Case] = &[
    (
        "cron_every_second_on_4_workers_one_killed_fires_each_time_once",
        every_second,
    ),
    ("cron_missed_window_is_caught_up_once_or_skipped", missed),
    ("cron_schedules_from_code_are_listed_with_next_fire", listed),
    (
        "cron_rows_are_made_as_enqueue_makes_them",
        rows_like_enqueue,
    ),
];

/// A schedule's jobs get what `enqueue` would give them: here the job's own `max_run_time`,
/// with the schedule's queue and priority.
fn rows_like_enqueue(backend: Backend) {
    let t = TestDb::new(backend, "cron_rows");
    let job = Sleeps {
        log: "unused".into(),
        key: "k".into(),
        millis: 0,
        max_run_time_secs: Some(77),
    };
    let schedule = Schedule::new("sleepy", "* * * * * *", &job)
        .unwrap()
        .queue("held")
        .priority(7);
    t.db.add_schedule(&schedule).unwrap();
    t.db.pause_queue("held").unwrap();
    let mut worker = spawn_worker(&t, "w", &["work", "--sleep-delay", "0.2"]);
    let fired = wait_until(Duration::from_secs(20), || {
        t.db.count_jobs(&JobFilter::default()).unwrap() > 0
    });
    signal(&worker, libc::SIGTERM);
    assert!(wait_exit(&mut worker, Duration::from_secs(30)).success());
    assert!(fired, "the schedule fired: {}", worker_output(&t, "w"));
    let row = &t.db.jobs(&JobFilter::default()).unwrap()[0];
    assert_eq!(row.max_run_time, Some(77), "{row:?}");
    assert_eq!((row.queue.as_deref(), row.priority), (Some("held"), 7));
}

fn every_second(backend: Backend) {
    let t = TestDb::new(backend, "cron_every_second");
    let log = t.log();
    let schedule = Schedule::new("tick", "* * * * * *", &Tick { log: log.path() }).unwrap();
    t.db.add_schedule(&schedule).unwrap();
    let args = [
        "work",
        "--concurrency",
        "2",
        "--sleep-delay",
        "0.2",
        "--heartbeat-timeout",
        "2s",
    ];
    let mut workers: Vec<_> = (0..4)
        .map(|i| spawn_worker(&t, &format!("w{i}"), &args))
        .collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    // Kill the worker that makes the looks now (the cron lease's holder), mid-way.
    let holder = t.query_i64(match backend {
        Backend::Postgres => {
            "SELECT substring(ran_by from 'pid:([0-9]+)')::bigint FROM dj_maintenance \
             WHERE task = 'cron'"
        }
        Backend::Sqlite => {
            "SELECT CAST(substr(ran_by, instr(ran_by, 'pid:') + 4) AS INTEGER) \
             FROM dj_maintenance WHERE task = 'cron'"
        }
        Backend::Mysql => {
            "SELECT CAST(substring_index(ran_by, 'pid:', -1) AS SIGNED) \
             FROM dj_maintenance WHERE task = 'cron'"
        }
    });
    let killed = workers
        .iter()
        .position(|w| i64::from(w.id()) == holder)
        .unwrap_or_else(|| panic!("the cron lease is held by a test worker (pid {holder})"));
    signal(&workers[killed], libc::SIGKILL);
    let _ = wait_exit(&mut workers[killed], Duration::from_secs(10));
    let mut killed_worker = workers.remove(killed);
    let _ = killed_worker.wait();
    std::thread::sleep(Duration::from_secs(10).saturating_sub(started.elapsed()));
    assert!(t.db.remove_schedule("tick").unwrap());
    // What was enqueued runs (a job the killed worker held is freed after 2 s).
    assert!(
        wait_until(Duration::from_secs(30), || t
            .db
            .count_jobs(&JobFilter::default())
            .unwrap()
            == 0),
        "drained: {}",
        worker_output(&t, "w1")
    );
    for w in &workers {
        signal(w, libc::SIGTERM);
    }
    for w in &mut workers {
        assert!(wait_exit(w, Duration::from_secs(30)).success());
    }
    // Fire time (whole seconds) → the ids of the jobs performed for it.
    let mut by_fire: BTreeMap<u64, Vec<i64>> = BTreeMap::new();
    for line in log.lines() {
        let mut parts = line.split(' ').skip(1);
        let id: i64 = parts.next().unwrap().parse().unwrap();
        let fire: f64 = parts.next().unwrap().parse().unwrap();
        assert_eq!(fire.fract(), 0.0, "a fire time is a whole second: {line}");
        let ids = by_fire.entry(fire as u64).or_default();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let fires: Vec<u64> = by_fire.keys().copied().collect();
    println!(
        "{}: {} fire times over {:.1?}, 4 workers, the cron lease's holder SIGKILLed at 5 s",
        backend.name(),
        fires.len(),
        started.elapsed()
    );
    assert!(fires.len() >= 8, "{fires:?}");
    let doubled: Vec<_> = by_fire.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(doubled.is_empty(), "fire times enqueued twice: {doubled:?}");
    let (first, last) = (fires[0], fires[fires.len() - 1]);
    let missing: Vec<u64> = (first..=last)
        .filter(|s| !by_fire.contains_key(s))
        .collect();
    assert!(
        missing.is_empty(),
        "fire times missed: {missing:?} of {fires:?}"
    );
}

fn missed(backend: Backend) {
    let t = TestDb::new(backend, "cron_missed");
    let log = t.log();
    for (name, missed) in [("once", Missed::Once), ("skip", Missed::Skip)] {
        let job = Record {
            log: log.path(),
            key: name.into(),
        };
        let schedule = Schedule::new(name, "0 0 0 1 1 *", &job)
            .unwrap()
            .missed(missed);
        t.db.add_schedule(&schedule).unwrap();
    }
    // A schedule edited by hand into nonsense is skipped, and holds up no other.
    let broken = Record {
        log: log.path(),
        key: "broken".into(),
    };
    t.db.add_schedule(&Schedule::new("broken", "0 0 0 1 1 *", &broken).unwrap())
        .unwrap();
    t.exec("UPDATE dj_cron SET expression = 'every new year' WHERE name = 'broken'");
    // Every worker was down since 2020: each New Year since was missed.
    t.exec(match backend {
        Backend::Postgres => "UPDATE dj_cron SET next_fire_at = '2020-01-01 00:00:00+00'",
        Backend::Sqlite => "UPDATE dj_cron SET next_fire_at = '2020-01-01 00:00:00.000'",
        Backend::Mysql => "UPDATE dj_cron SET next_fire_at = '2020-01-01 00:00:00'",
    });
    let mut worker = spawn_worker(&t, "w", &["work", "--sleep-delay", "0.2"]);
    assert!(
        wait_until(Duration::from_secs(20), || t
            .db
            .schedules()
            .unwrap()
            .iter()
            .filter(|s| s.name != "broken")
            .all(|s| s.next_fire_at > Some(std::time::SystemTime::now()))),
        "both moved on: {}",
        worker_output(&t, "w")
    );
    assert!(
        wait_until(Duration::from_secs(20), || log.count("perform once") == 1),
        "{}",
        worker_output(&t, "w")
    );
    std::thread::sleep(Duration::from_secs(2));
    signal(&worker, libc::SIGTERM);
    assert!(wait_exit(&mut worker, Duration::from_secs(30)).success());
    assert_eq!(log.lines(), ["perform once"], "once: one job; skip: none");
    let out = worker_output(&t, "w");
    assert!(
        out.contains("Schedule broken skipped") && out.contains("not a cron expression"),
        "{out}"
    );
    let schedules = t.db.schedules().unwrap();
    let once = schedules.iter().find(|s| s.name == "once").unwrap();
    let first_missed = std::time::UNIX_EPOCH + Duration::from_secs(1_577_836_800);
    assert_eq!(once.last_fire_at, Some(first_missed), "{once:?}");
}

fn listed(backend: Backend) {
    let t = TestDb::new(backend, "cron_listed");
    let out = cli(&t, &["cron", "--json"]);
    let schedules: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(schedules["version"], 1, "{out}");
    let leap = schedules["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "LeapDay")
        .unwrap_or_else(|| panic!("LeapDay is listed: {out}"));
    assert_eq!(leap["expression"], "0 0 0 29 2 *");
    assert_eq!(leap["tz"], "Europe/Paris");
    assert_eq!(leap["missed"], "skip");
    assert_eq!(leap["queue"], "leap");
    assert_eq!(leap["from_code"], true);
    assert!(leap["last_fire_at"].is_null());
    // 2028-02-29 00:00 in Paris (CET) is 2028-02-28 23:00 UTC.
    assert_eq!(leap["next_fire_at"], "2028-02-28T23:00:00.000Z");
    let text = cli(&t, &["cron"]);
    assert!(
        text.contains("LeapDay") && text.contains("next: 2028-02-28T23:00:00.000Z"),
        "{text}"
    );
    assert!(cli(&t, &["cron", "--remove", "LeapDay"]).contains("Removed"));
}
