//! Batches (`dj::Batch`): jobs with callbacks on success, on complete and on discard, each
//! fired exactly once, even when the last jobs of two batches finish at the same moment in
//! two worker processes; jobs added to an open batch are waited for, and a finished batch
//! takes no more.

use std::process::Child;
use std::time::Duration;

use dj::{Batch, Error, Job, JobFilter, StepState, WorkflowState};
use dj_tests::jobs::{Gated, Grows, Record, Step};
use dj_tests::support::{Backend, TestDb};

use crate::operations::wait_until;
use crate::processes::{spawn_worker, stop_workers, worker_output};
use crate::Case;

pub const CASES: &[Case] = &[
    (
        "a_batchs_callbacks_fire_on_success_on_complete_and_on_discard_as_its_jobs_end",
        callbacks,
    ),
    (
        "the_last_jobs_of_two_batches_finishing_together_in_two_processes_fire_each_callback_once",
        finishing_together,
    ),
    (
        "jobs_added_to_an_open_batch_are_waited_for_and_a_finished_batch_takes_no_more",
        added_over_time,
    ),
];

fn record(log: &str, key: &str) -> Record {
    Record {
        log: log.to_owned(),
        key: key.to_owned(),
    }
}

fn step(log: &str, seq: u32, fail: u8) -> Step {
    keyed_step(log, "batch", seq, fail)
}

fn keyed_step(log: &str, key: &str, seq: u32, fail: u8) -> Step {
    Step {
        log: log.to_owned(),
        key: key.into(),
        seq,
        millis: 1,
        fail,
    }
}

/// A batch whose jobs all succeed fires on_success and on_complete and skips on_discard; one
/// with a job failing for good fires on_complete and on_discard, and cancels on_success.
fn callbacks(backend: Backend) {
    let t = TestDb::new(backend, "batch_callbacks");
    let log = t.log();
    let path = log.path();
    let mut runs = Vec::new();
    for (name, failing) in [("good", None), ("bad", Some(3))] {
        let mut batch = Batch::new(name);
        for seq in 0..5 {
            let fail = if Some(seq) == failing { 2 } else { 0 };
            let job = keyed_step(&path, name, seq, fail);
            batch.add(job.delay().queue(format!("q{}", seq % 2)));
        }
        batch
            .on_success(record(&path, &format!("{name} success")))
            .on_complete(record(&path, &format!("{name} complete")))
            .on_discard(record(&path, &format!("{name} discard")));
        runs.push(batch.enqueue(&t.db).unwrap());
    }
    assert_eq!(runs[0].jobs.len(), 5);
    let report = dj::Worker::new(t.db.clone()).work_off(100).unwrap();
    assert_eq!((report.succeeded, report.failed), (9 + 4, 1), "{report:?}");
    for (line, n) in [
        ("perform good success", 1),
        ("perform good complete", 1),
        ("perform good discard", 0),
        ("perform bad success", 0),
        ("perform bad complete", 1),
        ("perform bad discard", 1),
    ] {
        assert_eq!(log.count(line), n, "{line}: {:?}", log.lines());
    }
    let good = t.db.workflow(runs[0].id).unwrap().unwrap();
    assert!(good.batch);
    assert_eq!(
        (good.state, good.pending, good.failed),
        (WorkflowState::Succeeded, 0, 0)
    );
    assert_eq!(good.step("on_discard").unwrap().state, StepState::Skipped);
    let bad = t.db.workflow(runs[1].id).unwrap().unwrap();
    assert_eq!(
        (bad.state, bad.pending, bad.failed),
        (WorkflowState::Failed, 0, 2)
    );
    assert_eq!(bad.step("on_success").unwrap().state, StepState::Cancelled);
    assert_eq!(bad.step("on_discard").unwrap().state, StepState::Succeeded);
    // Callbacks run after every job of their batch.
    let lines = log.lines();
    for name in ["good", "bad"] {
        let last_end = (lines.iter())
            .rposition(|l| l.starts_with(&format!("end {name} ")))
            .unwrap();
        let first_callback = (lines.iter())
            .position(|l| l.starts_with(&format!("perform {name} ")))
            .unwrap();
        assert!(first_callback > last_end, "{name}: {lines:?}");
    }
}

/// Rounds of two batches of two jobs each, held at a gate until all four run at once in two
/// worker processes (two each), then let go together: every round, each batch's on_success
/// and on_complete fire once, and on_discard never.
fn finishing_together(backend: Backend) {
    const ROUNDS: usize = 50;
    let t = TestDb::new(backend, "batch_together");
    let log = t.log();
    let path = log.path();
    let dir = std::path::Path::new(&path).with_extension("gates");
    std::fs::create_dir_all(&dir).unwrap();
    let mut workers: Vec<Child> = (0..2)
        .map(|i| {
            let args = [
                "work",
                "--concurrency",
                "2",
                "--read-ahead",
                "0",
                "--sleep-delay",
                "0.1",
            ];
            spawn_worker(&t, &format!("w{i}"), &args)
        })
        .collect();
    for round in 0..ROUNDS {
        let gate = dir.join(format!("gate-{round}"));
        let gate = gate.to_string_lossy().into_owned();
        for b in 0..2 {
            let mut batch = Batch::new(format!("round {round} batch {b}"));
            for j in 0..2 {
                batch.add(Gated {
                    log: path.clone(),
                    key: format!("{round}-{b}-{j}"),
                    gate: gate.clone(),
                });
            }
            batch
                .on_success(record(&path, &format!("success {round}-{b}")))
                .on_complete(record(&path, &format!("complete {round}-{b}")))
                .on_discard(record(&path, &format!("discard {round}-{b}")));
            batch.enqueue(&t.db).unwrap();
        }
        let all_started = wait_until(Duration::from_secs(30), || {
            (0..2).all(|b| (0..2).all(|j| log.count(&format!("start {round}-{b}-{j}")) == 1))
        });
        assert!(all_started, "round {round}: {:?}", log.lines());
        std::fs::write(&gate, "").unwrap();
        let fired = wait_until(Duration::from_secs(30), || {
            (0..2).all(|b| {
                log.count(&format!("perform success {round}-{b}")) >= 1
                    && log.count(&format!("perform complete {round}-{b}")) >= 1
            })
        });
        assert!(fired, "round {round}: {:?}", log.lines());
    }
    // Let any second firing show itself before counting.
    std::thread::sleep(Duration::from_millis(500));
    let idle = wait_until(Duration::from_secs(30), || {
        t.db.count_jobs(&JobFilter::default()).unwrap() == 0
    });
    stop_workers(&t, &mut workers);
    assert!(idle);
    for i in 0..2 {
        let out = worker_output(&t, &format!("w{i}"));
        assert!(
            out.contains("Job Gated"),
            "w{i} ran none of the batches' jobs: {out}"
        );
    }
    for round in 0..ROUNDS {
        for b in 0..2 {
            assert_eq!(log.count(&format!("perform success {round}-{b}")), 1);
            assert_eq!(log.count(&format!("perform complete {round}-{b}")), 1);
            assert_eq!(log.count(&format!("perform discard {round}-{b}")), 0);
        }
    }
    let finished = t.query_i64("SELECT count(*) FROM dj_workflows WHERE state = 'succeeded'");
    assert_eq!(finished, 2 * ROUNDS as i64);
}

/// Jobs added while the batch is open hold its callbacks back until they have run too;
/// once the callbacks have fired, the batch refuses more, and a workflow is no batch.
fn added_over_time(backend: Backend) {
    let t = TestDb::new(backend, "batch_added");
    let log = t.log();
    let path = log.path();
    let mut batch = Batch::new("growing");
    batch.add(step(&path, 0, 0));
    // Not due for an hour: the batch stays open after the first job has run.
    batch.add(step(&path, 1, 0).delay().run_in(Duration::from_secs(3600)));
    batch.on_complete(record(&path, "complete"));
    let run = batch.enqueue(&t.db).unwrap();
    let report = dj::Worker::new(t.db.clone()).work_off(10).unwrap();
    assert_eq!(report.succeeded, 1);
    let added =
        t.db.add_to_batch(run.id, (2..5).map(|seq| step(&path, seq, 0)))
            .unwrap();
    assert_eq!(added.len(), 3);
    let info = t.db.workflow(run.id).unwrap().unwrap();
    assert_eq!((info.state, info.pending), (WorkflowState::Running, 5));
    assert_eq!(info.step("on_complete").unwrap().waiting_on, 4);
    assert_eq!(info.step("job-5").unwrap().job_id, added[2]);
    t.db.run_jobs_now(&JobFilter::default()).unwrap();
    dj::Worker::new(t.db.clone()).work_off(10).unwrap();
    let lines = log.lines();
    let complete = lines.iter().position(|l| l == "perform complete").unwrap();
    let last_end = lines
        .iter()
        .rposition(|l| l.starts_with("end batch"))
        .unwrap();
    assert!(complete > last_end, "{lines:?}");
    assert_eq!(log.count("perform complete"), 1);
    let info = t.db.workflow(run.id).unwrap().unwrap();
    assert_eq!(info.state, WorkflowState::Succeeded);

    // A job adds to its own batch while it runs: 1 + 2 + 2×1 jobs, then the callback.
    let mut batch = Batch::new("tree");
    batch.add(Grows {
        log: path.clone(),
        key: "root".into(),
        more: 2,
    });
    batch.on_success(record(&path, "tree done"));
    let tree = batch.enqueue(&t.db).unwrap();
    let report = dj::Worker::new(t.db.clone()).work_off(20).unwrap();
    assert_eq!((report.succeeded, report.failed), (6, 0), "{report:?}");
    let lines = log.lines();
    assert_eq!(lines.iter().filter(|l| l.starts_with("grew ")).count(), 5);
    assert_eq!(
        lines.last().map(String::as_str),
        Some("perform tree done"),
        "{lines:?}"
    );
    let info = t.db.workflow(tree.id).unwrap().unwrap();
    assert_eq!(
        (info.state, info.steps.len()),
        (WorkflowState::Succeeded, 6)
    );

    match t.db.add_to_batch(run.id, [step(&path, 9, 0)]) {
        Err(Error::Invalid(message)) => {
            assert!(message.contains("start a new batch"), "{message}")
        }
        other => panic!("refused, not {other:?}"),
    }
    let mut workflow = dj::Workflow::new("not a batch");
    workflow.step("only", step(&path, 10, 0));
    let workflow = workflow.enqueue(&t.db).unwrap();
    match t.db.add_to_batch(workflow.id, [step(&path, 11, 0)]) {
        Err(Error::Invalid(message)) => assert!(message.contains("is not a batch"), "{message}"),
        other => panic!("refused, not {other:?}"),
    }
    match Batch::new("empty").enqueue(&t.db) {
        Err(Error::Invalid(message)) => assert!(message.contains("no jobs"), "{message}"),
        other => panic!("refused, not {other:?}"),
    }
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), 1);
}
