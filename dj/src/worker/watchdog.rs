//! The watchdog: enforces `max_run_time` and cancel requests beside the executors. A job past its deadline is
//! recorded as a failed attempt ("execution expired") at once, its lock is kept (the worker's
//! heartbeat keeps it alive) until the overrunning code really returns, so the job never runs
//! twice at once, and its place gets a new executor thread. Twice a second it also asks the
//! database whether any of its running jobs was cancelled (`dj_cancels`), and signals those.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::completer::Message;
use super::executor::{self, expired_error};
use super::retry::{self, Failure};
use super::{job_label, Shared, StopFlag};

const TICK: Duration = Duration::from_millis(100);

/// Cancel requests are read every this many ticks (500 ms): a cancelled job hears of it
/// within a second.
const CANCEL_POLL_TICKS: u32 = 5;

pub(super) fn spawn(
    shared: Arc<Shared>,
    outcomes: Sender<Message>,
    threads: Arc<AtomicUsize>,
    done: StopFlag,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("dj-watchdog".into())
        .spawn(move || {
            let mut ticks = 0u32;
            while !done.is_set() {
                expire_overdue(&shared, &outcomes, &threads);
                ticks = ticks.wrapping_add(1);
                if ticks % CANCEL_POLL_TICKS == 0 {
                    signal_cancelled(&shared);
                }
                done.sleep(TICK);
            }
        })
        .expect("spawn the watchdog thread")
}

fn expire_overdue(shared: &Arc<Shared>, outcomes: &Sender<Message>, threads: &AtomicUsize) {
    for overdue in shared.slots.overdue(Instant::now()) {
        let row = &overdue.row;
        let label = job_label(&overdue.run.name, row.id, row.queue.as_deref());
        shared.failed.fetch_add(1, Ordering::SeqCst);
        let outcome = retry::failed_attempt(
            shared,
            Failure {
                job: Some(&*overdue.run.job),
                ctx: None,
                row,
                label: &label,
                error: expired_error(overdue.run.max_run_time),
                // Kept until the overrunning code returns.
                release: false,
                ran_for: Some(overdue.run.max_run_time),
            },
        );
        let _ = outcomes.send(Message::Write(overdue.owner.clone(), outcome));
        // The job's thread is stuck in its code; its place gets a new thread.
        let number = threads.fetch_add(1, Ordering::SeqCst);
        executor::spawn(shared.clone(), outcomes.clone(), number);
    }
}

/// Signals the running jobs that have a cancel request.
fn signal_cancelled(shared: &Shared) {
    let running = shared.slots.cancellable();
    if running.is_empty() {
        return;
    }
    let requested = match shared.db.store().job_cancel_requested(&running) {
        Ok(ids) => ids,
        Err(e) => {
            shared.say_error(format_args!("Error while reading cancel requests: {e}"));
            return;
        }
    };
    for (row, name) in shared.slots.cancel(&requested) {
        let label = job_label(&name, row.id, row.queue.as_deref());
        shared.say(format_args!("{label} CANCEL requested: stopping it"));
    }
}
