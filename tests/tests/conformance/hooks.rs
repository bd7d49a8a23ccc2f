//! Hook order and the context.

use dj::{Job, Worker};
use dj_tests::jobs::{Hooked, ReadsState};
use dj_tests::support::{Backend, TestDb};

use crate::order::serial;
use crate::Case;

pub const CASES: &[Case] = &[
    ("hooks_run_in_order_on_success", hooks_success),
    ("hooks_run_in_order_on_failure", hooks_failure),
    ("jobs_reach_app_state_through_the_context", context_state),
];

fn hooks_success(backend: Backend) {
    let t = TestDb::new(backend, "hooksok");
    let log = t.log();
    Hooked {
        log: log.path(),
        fail: false,
    }
    .delay()
    .enqueue(&t.db)
    .unwrap();
    assert_eq!(serial(&t).work_off(10).unwrap().succeeded, 1);
    assert_eq!(log.lines(), ["before", "perform", "success", "after"]);
}

fn hooks_failure(backend: Backend) {
    let t = TestDb::new(backend, "hooksfail");
    let log = t.log();
    Hooked {
        log: log.path(),
        fail: true,
    }
    .delay()
    .enqueue(&t.db)
    .unwrap();
    assert_eq!(serial(&t).work_off(10).unwrap().failed, 1);
    assert_eq!(
        log.lines(),
        ["before", "perform", "error", "after", "failure"]
    );
}

fn context_state(backend: Backend) {
    let t = TestDb::new(backend, "state");
    let log = t.log();
    ReadsState { log: log.path() }
        .delay()
        .enqueue(&t.db)
        .unwrap();
    let worker = Worker::new(t.db.clone()).state(dj_tests::state());
    assert_eq!(worker.work_off(10).unwrap().succeeded, 1);
    assert_eq!(
        log.lines(),
        ["state: hello from the worker state", "attempts: 0"]
    );
}
