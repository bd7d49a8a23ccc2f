//! Workflows (`dj::Workflow`): steps that run only after the steps they name have
//! succeeded, held in the database until then and released by whichever transaction
//! finishes their last dependency; failures cancel dependants (or not, for steps that run
//! anyway); a workflow's state in one read; mistakes refused before anything is written.

use std::collections::HashMap;
use std::process::Child;
use std::time::Duration;

use dj::{Error, Job, JobFilter, JobResult, StepState, Workflow, WorkflowCancel, WorkflowState};
use dj_tests::jobs::{Record, SquareStep, Step, SumOf};
use dj_tests::support::{Backend, TestDb};

use crate::operations::wait_until;
use crate::pause::cli;
use crate::processes::{
    signal, spawn_bin_at, spawn_worker, stop_workers, wait_exit, worker_output, WORKER,
};
use crate::web::{client, csrf, Web};
use crate::Case;

pub const CASES: &[Case] = &[
    (
        "a_1000_step_diamond_workflow_over_4_processes_runs_every_step_once_in_dependency_order",
        diamond_over_processes,
    ),
    (
        "a_failed_step_cancels_its_dependants_and_steps_that_run_anyway_still_run",
        failure_cancels_dependants,
    ),
    (
        "a_step_that_fails_under_destroy_failed_jobs_or_is_deleted_is_not_counted_a_success",
        destroyed_and_deleted_steps,
    ),
    (
        "a_workflow_step_reads_its_dependencies_results",
        dependency_results,
    ),
    (
        "cancelling_a_workflow_stops_its_waiting_and_ready_steps",
        cancel_workflow,
    ),
    (
        "a_workflow_with_a_cycle_an_unknown_step_or_a_name_twice_is_refused_and_nothing_written",
        refused_workflows,
    ),
    (
        "a_workflow_is_shown_cancelled_and_retried_from_the_cli_and_the_dashboard",
        cli_and_dashboard,
    ),
    (
        "a_workflow_worked_through_sigkills_and_killed_backends_loses_no_step",
        killed_workers,
    ),
];

fn step(log: &str, seq: u32, fail: u8) -> Step {
    Step {
        log: log.to_owned(),
        key: "wf".into(),
        seq,
        millis: 1,
        fail,
    }
}

/// 1 root, 499 steps after it, 499 steps each after two neighbours of the layer before (the
/// diamonds), and a last step after all of those: 1,000 steps, over 4 worker processes with
/// 300 plain jobs beside them, two queues, mixed priorities, every 50th step failing once.
fn diamond_over_processes(backend: Backend) {
    let t = TestDb::new(backend, "workflow_diamond");
    let log = t.log();
    let path = log.path();
    const WIDTH: u32 = 499;
    let mut deps: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut workflow = Workflow::new("diamond");
    let fails = |seq: u32| u8::from(seq % 50 == 49);
    workflow.step("s0", step(&path, 0, 0));
    for i in 1..=WIDTH {
        let job = step(&path, i, fails(i)).delay().priority((i % 3) as i32);
        let job = if i % 2 == 0 { job.queue("wide") } else { job };
        workflow.step(format!("s{i}"), job).after(["s0"]);
        deps.insert(i, vec![0]);
    }
    for j in 0..WIDTH {
        let seq = WIDTH + 1 + j;
        let (a, b) = (1 + j, 1 + (j + 1) % WIDTH);
        let job = step(&path, seq, fails(seq))
            .delay()
            .priority((seq % 3) as i32);
        workflow
            .step(format!("s{seq}"), job)
            .after([format!("s{a}"), format!("s{b}")]);
        deps.insert(seq, vec![a, b]);
    }
    let last = 2 * WIDTH + 1;
    workflow
        .step(format!("s{last}"), step(&path, last, 0))
        .after((WIDTH + 1..last).map(|s| format!("s{s}")));
    deps.insert(last, (WIDTH + 1..last).collect());
    let run = workflow.enqueue(&t.db).unwrap();
    assert_eq!(run.steps.len(), 1000);
    dj::enqueue_many(
        &t.db,
        (0..300).map(|i| Record {
            log: path.clone(),
            key: format!("plain {i}"),
        }),
    )
    .unwrap();
    // Held steps are no rows yet: only the root and the plain jobs can be claimed.
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), 301);
    let info = t.db.workflow(run.id).unwrap().unwrap();
    assert_eq!((info.state, info.pending), (WorkflowState::Running, 1000));

    let mut workers: Vec<Child> = (0..4)
        .map(|i| {
            let args = ["work", "--concurrency", "2", "--sleep-delay", "0.2"];
            spawn_worker(&t, &format!("w{i}"), &args)
        })
        .collect();
    let done = wait_until(Duration::from_secs(240), || {
        let info = t.db.workflow(run.id).unwrap().unwrap();
        info.state != WorkflowState::Running && t.db.count_jobs(&JobFilter::default()).unwrap() == 0
    });
    stop_workers(&t, &mut workers);
    let info = t.db.workflow(run.id).unwrap().unwrap();
    assert!(done, "not finished: {} pending", info.pending);
    assert_eq!(info.state, WorkflowState::Succeeded);
    assert_eq!((info.pending, info.failed), (0, 0));
    assert!(info.finished_at.is_some());
    assert!(info.steps.iter().all(|s| s.state == StepState::Succeeded));

    // Every step started once (twice for those failing once), and only after the last end of
    // each of its dependencies.
    let lines = log.lines();
    let mut starts: HashMap<u32, Vec<usize>> = HashMap::new();
    let mut ends: HashMap<u32, Vec<usize>> = HashMap::new();
    for (at, line) in lines.iter().enumerate() {
        let mut words = line.split(' ');
        let (event, key, seq) = (words.next(), words.next(), words.next());
        if key != Some("wf") {
            continue;
        }
        let seq: u32 = seq.unwrap().parse().unwrap();
        match event {
            Some("start") => starts.entry(seq).or_default().push(at),
            Some("end") => ends.entry(seq).or_default().push(at),
            _ => {}
        }
    }
    for seq in 0..=last {
        let expected = if fails(seq) == 1 && seq != last { 2 } else { 1 };
        let n = starts.get(&seq).map_or(0, Vec::len);
        assert_eq!(n, expected, "step {seq} started {n} times");
        for dep in deps.get(&seq).into_iter().flatten() {
            let dep_end = *ends[dep].last().unwrap();
            assert!(
                starts[&seq][0] > dep_end,
                "step {seq} started before its dependency {dep} ended"
            );
        }
    }
    assert_eq!(log.count_prefix("perform plain"), 300);
    let busy = (0..4)
        .filter(|i| worker_output(&t, &format!("w{i}")).contains("Step"))
        .count();
    assert!(busy > 1, "only {busy} process(es) ran steps");
}

/// MySQL: a database migrated when migration 20 had no procedures (the tables only) gets them
/// from `migrate`, and its workflows then run.
pub const MYSQL_CASES: &[Case] = &[(
    "migrate_adds_the_workflow_procedures_to_a_database_migrated_without_them",
    procedures_added,
)];

fn procedures_added(backend: Backend) {
    let t = TestDb::new(backend, "workflow_routines");
    let present = "SELECT count(*) FROM information_schema.routines \
        WHERE routine_schema = DATABASE() AND routine_name LIKE 'dj\\_workflow\\_%'";
    assert_eq!(t.query_i64(present), 4);
    for name in ["release", "finish", "step_retried", "restore"] {
        t.exec(&format!("DROP PROCEDURE dj_workflow_{name}"));
    }
    assert_eq!(t.query_i64(present), 0);
    assert_eq!(
        t.db.migrate().unwrap(),
        Vec::<u32>::new(),
        "no migration applied again"
    );
    assert_eq!(t.query_i64(present), 4);
    let log = t.log();
    let path = log.path();
    let mut workflow = Workflow::new("after the repair");
    workflow.step("a", step(&path, 1, 0));
    workflow.step("b", step(&path, 2, 0)).after(["a"]);
    let run = workflow.enqueue(&t.db).unwrap();
    let report = dj::Worker::new(t.db.clone()).work_off(10).unwrap();
    assert_eq!(report.succeeded, 2, "{report:?}");
    let info = t.db.workflow(run.id).unwrap().unwrap();
    assert_eq!(info.state, WorkflowState::Succeeded, "{info:?}");
}

/// a → b (fails for good) → c → d; e after b runs anyway; f after a. b's failure cancels c
/// and d (d through c), not e or f; the workflow ends failed with one failure and two
/// cancellations.
fn failure_cancels_dependants(backend: Backend) {
    let t = TestDb::new(backend, "workflow_failure");
    let log = t.log();
    let path = log.path();
    let mut workflow = Workflow::new("failing");
    workflow.step("a", step(&path, 1, 0));
    workflow.step("b", step(&path, 2, 2)).after(["a"]);
    workflow.step("c", step(&path, 3, 0)).after(["b"]);
    workflow.step("d", step(&path, 4, 0)).after(["c", "a"]);
    workflow
        .step("e", step(&path, 5, 0))
        .after(["b"])
        .run_anyway();
    workflow.step("f", step(&path, 6, 0)).after(["a"]);
    let run = workflow.enqueue(&t.db).unwrap();
    // A held step is pending to the app, though it has no row yet.
    let d = run.step("d").unwrap();
    assert_eq!(t.db.job_result(d).unwrap(), JobResult::Pending);

    let report = dj::Worker::new(t.db.clone()).work_off(100).unwrap();
    assert_eq!((report.succeeded, report.failed), (3, 1), "{report:?}");
    let info = t.db.workflow(run.id).unwrap().unwrap();
    let state = |name: &str| info.step(name).unwrap().state;
    assert_eq!(state("a"), StepState::Succeeded);
    assert_eq!(state("b"), StepState::Failed);
    assert_eq!(state("c"), StepState::Cancelled);
    assert_eq!(state("d"), StepState::Cancelled);
    assert_eq!(state("e"), StepState::Succeeded);
    assert_eq!(state("f"), StepState::Succeeded);
    assert_eq!(info.step("c").unwrap().cancelled_by.as_deref(), Some("b"));
    assert_eq!(info.step("d").unwrap().after, ["a", "c"]);
    assert_eq!(info.state, WorkflowState::Failed);
    assert_eq!((info.pending, info.failed), (0, 3));
    assert!(log.count("start wf 3") == 0 && log.count("start wf 4") == 0);
    assert_eq!(log.count("start wf 5"), 1);
    match t.db.job_result(d).unwrap() {
        JobResult::Failed { error } => assert!(error.contains("cancelled"), "{error}"),
        other => panic!("a cancelled step's result is a failure, not {other:?}"),
    }

    // Retrying the failed step runs it again (it fails again); what it cancelled stays so.
    let b = run.step("b").unwrap();
    assert_eq!(t.db.retry_jobs(&JobFilter::default()).unwrap(), 1);
    let info = t.db.workflow(run.id).unwrap().unwrap();
    assert_eq!((info.state, info.pending), (WorkflowState::Running, 1));
    assert_eq!(info.step("b").unwrap().state, StepState::Ready);
    dj::Worker::new(t.db.clone()).work_off(10).unwrap();
    let info = t.db.workflow(run.id).unwrap().unwrap();
    assert_eq!(
        (info.state, info.pending, info.failed),
        (WorkflowState::Failed, 0, 3)
    );
    assert_eq!(log.count("start wf 2"), 2);
    assert!(t.db.job(b).unwrap().unwrap().failed_at.is_some());

    // With b fixed (its stored arguments changed, as a deploy would change its code), the
    // workflow's retry reruns b and puts c and d back to wait: all of them run, in order.
    t.exec(&format!(
        "UPDATE delayed_jobs SET handler = replace(handler, '\"fail\":2', '\"fail\":0') \
         WHERE id = {b}"
    ));
    assert_eq!(t.db.retry_workflow(run.id).unwrap(), Some(3));
    let info = t.db.workflow(run.id).unwrap().unwrap();
    assert_eq!(
        (info.state, info.pending, info.failed),
        (WorkflowState::Running, 3, 0)
    );
    assert_eq!(info.step("c").unwrap().state, StepState::Waiting);
    assert_eq!(info.step("c").unwrap().cancelled_by, None);
    let report = dj::Worker::new(t.db.clone()).work_off(10).unwrap();
    assert_eq!((report.succeeded, report.failed), (3, 0), "{report:?}");
    let info = t.db.workflow(run.id).unwrap().unwrap();
    assert_eq!(
        (info.state, info.pending, info.failed),
        (WorkflowState::Succeeded, 0, 0)
    );
    let lines = log.lines();
    let at = |line: &str| lines.iter().position(|l| l == line).unwrap();
    assert!(at("end wf 3") < at("start wf 4"), "d after c: {lines:?}");
    assert_eq!(t.db.retry_workflow(-1).unwrap(), None);
}

/// A step that fails for good under `destroy_failed_jobs` leaves no row, and an operator's
/// delete removes one: neither counts as a success, so neither releases its dependants.
fn destroyed_and_deleted_steps(backend: Backend) {
    let t = TestDb::new(backend, "workflow_destroyed");
    let log = t.log();
    let path = log.path();
    let mut workflow = Workflow::new("destroyed");
    workflow.step("fails", step(&path, 1, 2));
    workflow
        .step("after-fails", step(&path, 2, 0))
        .after(["fails"]);
    workflow.step("deleted", step(&path, 3, 0).delay().queue("held-back"));
    workflow
        .step("after-deleted", step(&path, 4, 0))
        .after(["deleted"]);
    let run = workflow.enqueue(&t.db).unwrap();
    let deleted =
        t.db.delete_jobs(&JobFilter {
            queue: Some("held-back".into()),
            ..JobFilter::default()
        })
        .unwrap();
    assert_eq!(deleted, 1);
    let report = dj::Worker::new(t.db.clone())
        .destroy_failed_jobs(true)
        .work_off(10)
        .unwrap();
    assert_eq!((report.succeeded, report.failed), (0, 1), "{report:?}");
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), 0);
    let info = t.db.workflow(run.id).unwrap().unwrap();
    let state = |name: &str| info.step(name).unwrap().state;
    assert_eq!(state("fails"), StepState::Failed);
    assert_eq!(state("after-fails"), StepState::Cancelled);
    assert_eq!(state("deleted"), StepState::Failed);
    assert_eq!(state("after-deleted"), StepState::Cancelled);
    assert_eq!(
        (info.state, info.pending, info.failed),
        (WorkflowState::Failed, 0, 4)
    );
    assert_eq!(
        log.count_prefix("start wf 2") + log.count_prefix("start wf 4"),
        0
    );
}

/// Three squares, then a step that adds their results up, read by step name; enqueued from
/// async code.
fn dependency_results(backend: Backend) {
    let t = TestDb::new(backend, "workflow_results");
    let log = t.log();
    let mut workflow = Workflow::new("sums");
    let parts: Vec<String> = (1..=3).map(|n| format!("square-{n}")).collect();
    for (n, name) in (1..).zip(&parts) {
        workflow.step(name.as_str(), SquareStep { log: log.path(), n });
    }
    let sum = SumOf {
        log: log.path(),
        steps: parts.clone(),
    };
    workflow.step("sum", sum).after(&parts);
    // Enqueued from an async app: inside a current-thread runtime, without blocking it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let run = runtime.block_on(workflow.enqueue_async(&t.db)).unwrap();
    let report = dj::Worker::new(t.db.clone()).work_off(10).unwrap();
    assert_eq!(report.succeeded, 4, "{report:?}");
    assert_eq!(log.count("sum 14"), 1, "{:?}", log.lines());
    let total: i64 =
        t.db.job_result(run.step("sum").unwrap())
            .unwrap()
            .value(0)
            .unwrap();
    assert_eq!(total, 14);

    // A step asking for a step its workflow lacks gets an error naming it.
    let mut workflow = Workflow::new("missing");
    let wrong = SumOf {
        log: log.path(),
        steps: vec!["nope".into()],
    };
    workflow.step("sum", wrong);
    let run = workflow.enqueue(&t.db).unwrap();
    let report = dj::Worker::new(t.db.clone()).work_off(10).unwrap();
    assert_eq!(report.failed, 1, "{report:?}");
    let row = t.db.job(run.step("sum").unwrap()).unwrap().unwrap();
    let error = row.last_error.unwrap_or_default();
    assert!(error.contains("`nope`"), "{error}");
}

/// A ready step is dequeued (failed for good as cancelled) and a waiting one cancelled; the
/// workflow ends cancelled, and a second cancel changes nothing.
fn cancel_workflow(backend: Backend) {
    let t = TestDb::new(backend, "workflow_cancel");
    let log = t.log();
    let path = log.path();
    let mut workflow = Workflow::new("cancelled");
    workflow.step("first", step(&path, 1, 0));
    workflow.step("second", step(&path, 2, 0)).after(["first"]);
    workflow.step("third", step(&path, 3, 0)).after(["second"]);
    let run = workflow.enqueue(&t.db).unwrap();
    assert_eq!(
        t.db.cancel_workflow(run.id).unwrap(),
        WorkflowCancel::Cancelled
    );
    let info = t.db.workflow(run.id).unwrap().unwrap();
    assert_eq!(info.state, WorkflowState::Cancelled);
    assert_eq!(info.pending, 0, "{info:?}");
    assert!(info.finished_at.is_some());
    assert_eq!(info.step("first").unwrap().state, StepState::Failed);
    assert_eq!(info.step("second").unwrap().state, StepState::Cancelled);
    let first = t.db.job(run.step("first").unwrap()).unwrap().unwrap();
    assert_eq!(first.last_error.as_deref(), Some("cancelled"));
    let report = dj::Worker::new(t.db.clone()).work_off(10).unwrap();
    assert_eq!(report.succeeded + report.failed, 0);
    assert_eq!(log.lines().len(), 0);
    assert_eq!(
        t.db.cancel_workflow(run.id).unwrap(),
        WorkflowCancel::Finished
    );
    assert_eq!(t.db.cancel_workflow(-5).unwrap(), WorkflowCancel::NotFound);
}

fn refused_workflows(backend: Backend) {
    let t = TestDb::new(backend, "workflow_refused");
    let refused = |workflow: Workflow| match workflow.enqueue(&t.db) {
        Err(Error::Invalid(message)) => message,
        other => panic!("refused, not {other:?}"),
    };
    let s = |seq| step("/dev/null", seq, 0);

    let mut cycle = Workflow::new("cycle");
    cycle.step("fetch", s(0));
    cycle.step("a", s(1)).after(["fetch", "c"]);
    cycle.step("b", s(2)).after(["a"]);
    cycle.step("c", s(3)).after(["b"]);
    cycle.step("report", s(4)).after(["c"]);
    let message = refused(cycle);
    assert!(message.contains("cycle (a → b → c → a)"), "{message}");

    let mut unknown = Workflow::new("unknown");
    unknown.step("fetch", s(0));
    unknown.step("report", s(1)).after(["fecth"]);
    let message = refused(unknown);
    assert!(
        message.contains(
            "runs after `fecth`, which is not a step of it; its steps are `fetch`, `report`"
        ),
        "{message}"
    );

    let mut twice = Workflow::new("twice");
    twice.step("fetch", s(0));
    twice.step("fetch", s(1));
    assert!(refused(twice).contains("two steps are named `fetch`"));

    let mut itself = Workflow::new("itself");
    itself.step("loop", s(0)).after(["loop"]);
    assert!(refused(itself).contains("cycle (loop → loop)"));

    let mut unique = Workflow::new("unique");
    unique.step("once", s(0).delay().unique("k"));
    assert!(refused(unique).contains("cannot be unique"));

    assert!(refused(Workflow::new("empty")).contains("no steps"));
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), 0);
    assert_eq!(t.query_i64("SELECT count(*) FROM dj_workflows"), 0);
    assert_eq!(t.query_i64("SELECT count(*) FROM dj_workflow_steps"), 0);

    // Held steps are moved with `SELECT *`: the two tables' columns must stay the same.
    let columns = |table: &str| match backend {
        Backend::Sqlite => t.query_i64(&format!(
            "SELECT count(*) FROM pragma_table_info('{table}') AS c \
             JOIN pragma_table_info('delayed_jobs') AS d ON d.cid = c.cid AND d.name = c.name"
        )),
        Backend::Postgres => {
            let ordered = |of: &str| {
                format!(
                    "SELECT column_name, data_type, \
                         row_number() OVER (ORDER BY ordinal_position) AS n \
                     FROM information_schema.columns \
                     WHERE table_name = '{of}' AND table_schema = current_schema()"
                )
            };
            t.query_i64(&format!(
                "SELECT count(*) FROM ({}) c JOIN ({}) d USING (n, column_name, data_type)",
                ordered(table),
                ordered("delayed_jobs")
            ))
        }
        Backend::Mysql => {
            let ordered = |of: &str| {
                format!(
                    "SELECT column_name, column_type, \
                         row_number() OVER (ORDER BY ordinal_position) AS n \
                     FROM information_schema.columns \
                     WHERE table_name = '{of}' AND table_schema = DATABASE()"
                )
            };
            t.query_i64(&format!(
                "SELECT count(*) FROM ({}) c JOIN ({}) d USING (n, column_name, column_type)",
                ordered(table),
                ordered("delayed_jobs")
            ))
        }
    };
    assert_eq!(columns("dj_held_jobs"), columns("delayed_jobs"));
    assert!(columns("delayed_jobs") >= 24);
}

/// `worker workflow ID` prints the steps (and `--json` them), `--retry` and `--cancel` act;
/// the dashboard lists the workflow, shows its steps, and retries it through a form that
/// needs the CSRF token, which a read-only dashboard neither shows nor accepts.
fn cli_and_dashboard(backend: Backend) {
    let t = TestDb::new(backend, "workflow_surface");
    let log = t.log();
    let path = log.path();
    let mut workflow = Workflow::new("nightly <report>");
    workflow.step("fetch", step(&path, 1, 0));
    workflow.step("parse", step(&path, 2, 2)).after(["fetch"]);
    workflow.step("store", step(&path, 3, 0)).after(["parse"]);
    workflow
        .step("notify", step(&path, 4, 0))
        .after(["store"])
        .run_anyway();
    let run = workflow.enqueue(&t.db).unwrap();
    let id = run.id.to_string();
    dj::Worker::new(t.db.clone()).work_off(10).unwrap();

    let text = cli(&t, &["workflow", &id]);
    assert!(
        text.contains("Failed, 0 of 4 step(s) pending, 2 failed or cancelled"),
        "{text}"
    );
    let store_line = text.lines().find(|l| l.contains(" store ")).unwrap();
    assert!(
        store_line.contains("cancelled") && store_line.contains("`parse` failed"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&cli(&t, &["workflow", &id, "--json"])).unwrap();
    assert_eq!(json["workflow"]["state"], "failed");
    assert_eq!(json["workflow"]["steps"][3]["name"], "notify");
    assert_eq!(json["workflow"]["steps"][3]["state"], "succeeded");
    assert_eq!(json["workflow"]["steps"][1]["after"][0], "fetch");
    let rows: serde_json::Value =
        serde_json::from_str(&cli(&t, &["jobs", "--workflow", &id, "--json"])).unwrap();
    assert_eq!(rows["jobs"].as_array().map(Vec::len), Some(1), "{rows}");

    let web = Web::start(&t, "web", &[]);
    let http = client();
    let metrics = http
        .get(format!("{}/metrics", web.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("dj_workflows{state=\"failed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("dj_workflows{state=\"running\"} 0"),
        "{metrics}"
    );
    let list = http
        .get(format!("{}/workflows", web.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(list.contains(&format!("data-workflow=\"{id}\"")), "{list}");
    assert!(list.contains("nightly &lt;report&gt;"), "escaped: {list}");
    let page = http
        .get(format!("{}/workflows/{id}", web.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        page.contains("<span class=\"badge step-cancelled\">cancelled</span>"),
        "{page}"
    );
    let refused = http
        .post(format!("{}/workflows/{id}/retry", web.url))
        .header("Origin", &web.url)
        .form(&[("csrf", "forged")])
        .send()
        .unwrap();
    assert_eq!(refused.status(), 403);
    let done = http
        .post(format!("{}/workflows/{id}/retry", web.url))
        .header("Origin", &web.url)
        .form(&[("csrf", csrf(&page))])
        .send()
        .unwrap();
    assert_eq!(done.status(), 303);
    let location = done.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.contains(&format!("/workflows/{id}?notice=retried")),
        "{location}"
    );
    let info = t.db.workflow(run.id).unwrap().unwrap();
    assert_eq!((info.state, info.pending), (WorkflowState::Running, 2));
    drop(web);

    let read_only = Web::start(&t, "read-only", &["--read-only"]);
    let page = http
        .get(format!("{}/workflows/{id}", read_only.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(!page.contains("workflow-cancel"), "{page}");
    let refused = http
        .post(format!("{}/workflows/{id}/cancel", read_only.url))
        .header("Origin", &read_only.url)
        .form(&[("csrf", "any")])
        .send()
        .unwrap();
    assert_eq!(refused.status(), 403);
    drop(read_only);

    let text = cli(&t, &["workflow", &id, "--cancel"]);
    assert!(
        text.starts_with(&format!("Workflow {id}: cancelled")),
        "{text}"
    );
    assert_eq!(
        t.db.workflow(run.id).unwrap().unwrap().state,
        WorkflowState::Cancelled
    );
}

/// root → 40 steps → join → 40 steps → last, 400 ms each, worked by one process at a time
/// that is killed (SIGKILL) after 1.5 s, 8 times, with every backend of the workers
/// terminated in between on PostgreSQL and MySQL; then one worker finishes. Every step
/// succeeded, the workflow too, nothing is left held, and no step started before one of its
/// dependencies had ended.
fn killed_workers(backend: Backend) {
    let t = TestDb::new(backend, "workflow_chaos");
    let log = t.log();
    let path = log.path();
    let mut deps: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut workflow = Workflow::new("chaos");
    let slow = |seq: u32| Step {
        log: path.clone(),
        key: "wf".into(),
        seq,
        millis: 400,
        fail: 0,
    };
    workflow.step("s0", slow(0));
    for i in 1..=40 {
        workflow.step(format!("s{i}"), slow(i)).after(["s0"]);
        deps.insert(i, vec![0]);
    }
    workflow
        .step("s41", slow(41))
        .after((1..=40).map(|i| format!("s{i}")));
    deps.insert(41, (1..=40).collect());
    for i in 42..=81 {
        workflow.step(format!("s{i}"), slow(i)).after(["s41"]);
        deps.insert(i, vec![41]);
    }
    workflow
        .step("s82", slow(82))
        .after((42..=81).map(|i| format!("s{i}")));
    deps.insert(82, (42..=81).collect());
    let run = workflow.enqueue(&t.db).unwrap();

    let app = format!("dj_wf_chaos_{}", std::process::id());
    let url = match backend {
        Backend::Postgres => format!("{}&application_name={app}", t.url),
        Backend::Mysql => t.mysql_user_url(&app),
        Backend::Sqlite => t.url.clone(),
    };
    let args = [
        "work",
        "--concurrency",
        "4",
        "--sleep-delay",
        "0.2",
        "--heartbeat-timeout",
        "3s",
    ];
    let finished = || t.db.workflow(run.id).unwrap().unwrap().state != WorkflowState::Running;
    let mut ended = 0;
    for round in 0..8 {
        if finished() {
            break;
        }
        let label = format!("k{round}");
        let mut w = spawn_bin_at(WORKER, &t, &label, &url, &args);
        std::thread::sleep(Duration::from_millis(750));
        ended += match backend {
            Backend::Postgres => t
                .pg_client()
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE application_name = $1",
                    &[&app],
                )
                .unwrap() as usize,
            Backend::Mysql => t.mysql_kill_user(&app),
            Backend::Sqlite => 0,
        };
        std::thread::sleep(Duration::from_millis(750));
        signal(&w, libc::SIGKILL);
        wait_exit(&mut w, Duration::from_secs(10));
    }
    let mut last = vec![spawn_worker(&t, "last", &args)];
    let done = wait_until(Duration::from_secs(120), finished);
    // TERM only once it is up (a TERM before its handlers are installed would kill it).
    wait_until(Duration::from_secs(20), || {
        worker_output(&t, "last").contains("Starting job worker")
    });
    stop_workers(&t, &mut last);
    let info = t.db.workflow(run.id).unwrap().unwrap();
    assert!(
        done,
        "not finished: {info:?}\n{}",
        worker_output(&t, "last")
    );
    assert_eq!(
        (info.state, info.pending, info.failed),
        (WorkflowState::Succeeded, 0, 0)
    );
    assert!(info.steps.iter().all(|s| s.state == StepState::Succeeded));
    assert_eq!(t.query_i64("SELECT count(*) FROM dj_held_jobs"), 0);
    assert_eq!(t.db.count_jobs(&JobFilter::default()).unwrap(), 0);

    let lines = log.lines();
    let first = |event: &str, seq: u32| {
        let line = format!("{event} wf {seq}");
        lines.iter().position(|l| *l == line)
    };
    for (seq, deps) in &deps {
        let start = first("start", *seq).unwrap_or_else(|| panic!("step {seq} never started"));
        for dep in deps {
            let ended = first("end", *dep).unwrap();
            assert!(
                start > ended,
                "step {seq} started before its dependency {dep} ended"
            );
        }
    }
    let starts = lines.iter().filter(|l| l.starts_with("start wf")).count();
    eprintln!(
        "{}: 83 steps, {starts} starts through the kills, {ended} connections ended",
        backend.name()
    );
    if backend != Backend::Sqlite {
        assert!(ended > 0, "no worker connection was ended");
    }
}
