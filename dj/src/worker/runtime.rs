//! The runtime: starts a worker's roles around one slot table and stops them in order.
//!
//! Start-up: check the registry, wait for the database, start the async runtime and build the
//! state in it (when a state function is given), free what an earlier process with
//! this worker's name left locked, register in `dj_workers`, then start the completer, the
//! executors, the watchdog, the heartbeat and the rescuer, and run the producer on this
//! thread. Shutdown (stop flag, `exit_on_complete`, or `work_off`'s count reached): stop
//! claiming, hand back unstarted jobs, wait for running ones up to `shutdown_timeout`, unlock
//! what is still running (interrupted, not an attempt), let overrunning jobs return, write
//! every outcome, and remove the worker's entry.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::completer::{self, Message, Outcome};
use super::heartbeat::{self, Beat, NameLease};
use super::slots::Slots;
use super::{
    cron, executor, job_label, producer, rescuer, watchdog, Event, Report, Shared, StopFlag, Worker,
};
use crate::error::Result;
use crate::model::JobFilter;
use crate::store::Wakeups;

pub(super) fn run(worker: &Worker, max: Option<u64>) -> Result<Report> {
    let started = Instant::now();
    crate::registry::registry().check()?;
    wait_for_database(worker)?;
    let (shared, async_runtime) = prepare(worker, started)?;
    start_up(&shared)?;
    if shared.config.cron {
        crate::cron::register_from_code(&shared.db)?;
    }
    // Names taken when registering again after being declared dead.
    let leases: Arc<Mutex<Vec<NameLease>>> = Arc::default();
    say_starting(&shared);
    let roles = Roles::start(&shared, &leases);

    producer::run(&shared, max);

    shared.emit(|| Event::Stopping);
    roles.stop(&shared);
    if let Err(e) = shared.db.store().worker_remove(&shared.name(), None) {
        shared.say_error(format_args!("Error while deregistering: {e}"));
    }
    drop(leases);
    if let Some(runtime) = async_runtime {
        // Every async job has ended or was interrupted (unlocked): drop what is left.
        runtime.shutdown_background();
    }
    let report = shared.report();
    shared.emit(|| Event::Stopped { report });
    Ok(report)
}

/// Starts the async runtime (when a registered job is async or a state function builds the
/// state), gets the state, and builds what the roles share.
fn prepare(
    worker: &Worker,
    started: Instant,
) -> Result<(Arc<Shared>, Option<tokio::runtime::Runtime>)> {
    let async_runtime = (crate::registry::registry().has_async() || worker.state.builds())
        .then(|| async_runtime(worker.config.concurrency))
        .transpose()?;
    let state = match worker
        .state
        .get(&worker.db, async_runtime.as_ref().map(|rt| rt.handle()))
    {
        Ok(state) => state,
        Err(e) => {
            // Not dropped: that would block, which panics if `run` was called in a runtime.
            if let Some(runtime) = async_runtime {
                runtime.shutdown_background();
            }
            return Err(e);
        }
    };
    let shared = Arc::new(Shared {
        db: worker.db.clone(),
        config: worker.config.clone(),
        state,
        stop: worker.stop.clone(),
        name: RwLock::new(worker.name.0.clone()),
        slots: Slots::new(worker.config.concurrency),
        beat: Beat::new(),
        async_runtime: async_runtime.as_ref().map(|rt| rt.handle().clone()),
        listener: worker.listener.clone(),
        started,
        pace: Default::default(),
        lanes: Default::default(),
        lane_skips: crate::registry::registry().transactional_names(),
        progress: Default::default(),
        succeeded: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        interrupted: AtomicU64::new(0),
        snoozed: AtomicU64::new(0),
    });
    Ok((shared, async_runtime))
}

/// The start line, how the worker hears of new jobs, and the `Started` event.
fn say_starting(shared: &Shared) {
    shared.say(format_args!("Starting job worker"));
    match shared.db.store().wakeups() {
        Some(Wakeups::Listen(at)) => shared.say(format_args!("Wake-ups: LISTEN on {at}")),
        Some(Wakeups::Poll(why)) => shared.say(format_args!(
            "Wake-ups: polling every {} ({why})",
            humantime::format_duration(shared.config.sleep_delay)
        )),
        None => {}
    }
    shared.emit(|| Event::Started {
        worker: shared.name().to_string(),
    });
}

/// The roles running beside the producer: the completer, the executors, and the helpers
/// (watchdog, heartbeat, rescuer, cron) that run until `done`.
struct Roles {
    outcomes: Sender<Message>,
    completer: JoinHandle<()>,
    helpers: Vec<JoinHandle<()>>,
    done: StopFlag,
}

impl Roles {
    fn start(shared: &Arc<Shared>, leases: &Arc<Mutex<Vec<NameLease>>>) -> Roles {
        let (outcomes, out_rx) = mpsc::channel::<Message>();
        let completer = completer::spawn(shared.clone(), out_rx);
        let completer_wake = outcomes.clone();
        shared.lanes.wake_with(move || {
            let _ = completer_wake.send(Message::Wake);
        });
        let concurrency = shared.config.concurrency.max(1);
        let threads = Arc::new(AtomicUsize::new(concurrency));
        for number in 0..concurrency {
            executor::spawn(shared.clone(), outcomes.clone(), number);
        }
        let done = StopFlag::new();
        let mut helpers = vec![
            watchdog::spawn(shared.clone(), outcomes.clone(), threads, done.clone()),
            heartbeat::spawn(shared.clone(), leases.clone(), done.clone()),
            rescuer::spawn(shared.clone(), done.clone()),
            super::progress::spawn(shared.clone(), done.clone()),
        ];
        if shared.config.cron {
            helpers.push(cron::spawn(shared.clone(), done.clone()));
        }
        Roles {
            outcomes,
            completer,
            helpers,
            done,
        }
    }

    /// Once the producer has returned: shuts down the jobs, then the helpers, then the
    /// completer once every outcome is written.
    fn stop(self, shared: &Shared) {
        let deadline = shut_down(shared, &self.outcomes);
        // An executor marks its job finished, then sends the outcome: wait for it to arrive
        // and be written before telling the completer to stop.
        shared.slots.wait_written(deadline);
        self.done.set();
        for helper in self.helpers {
            let _ = helper.join();
        }
        let _ = self.outcomes.send(Message::Shutdown);
        let _ = self.completer.join();
    }
}

/// The tokio runtime async jobs run on, many per thread: as many threads as cores (at most
/// four, and no more than the concurrency).
fn async_runtime(concurrency: usize) -> Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores.min(4).min(concurrency.max(1)))
        .thread_name("dj-async")
        .enable_all()
        .build()?)
}

/// Rows still locked under this worker's name belong to an earlier process that had it (the
/// same host and pid, as in containers), which is gone: free them, then register. Then the
/// workers of this host whose process is gone are declared dead and their fast lanes'
/// crashes counted, before the first claim: a job that killed its worker in a lane left no
/// mark on its row, and a worker restarted at once would otherwise claim it in a lane again,
/// and die again, before its rescuer looks.
fn start_up(shared: &Shared) -> Result<()> {
    let name = shared.name();
    let reason = format!("the worker that ran it ({name}) restarted");
    shared.db.wait_for(
        shared.config.database_wait,
        &shared.stop,
        |store| {
            store.worker_remove(&name, None)?;
            store.lane_rescue(Some(&name))?;
            let rows = store.job_list(&JobFilter {
                locked_by: Some(name.to_string()),
                ..JobFilter::default()
            })?;
            rescuer::rescue_rows(shared, &name, &reason, rows)?;
            heartbeat::register(shared, &name)?;
            rescuer::rescue_dead_workers(shared)
        },
        |e, wait| {
            shared.say_error(format_args!(
                "Error while registering: {e} (retrying in {:.1}s)",
                wait.as_secs_f64()
            ))
        },
    )
}

/// Checks the table before the first claim. A missing table is an error naming `migrate`, a
/// database this process cannot write an error naming the file; an unreachable database is
/// waited for, with backoff, until it answers, the worker is stopped, or `database_wait` runs
/// out.
fn wait_for_database(worker: &Worker) -> Result<()> {
    let db = &worker.db;
    db.wait_for(
        worker.config.database_wait,
        &worker.stop,
        |store| store.check_schema(),
        |e, wait| {
            tracing::error!(
                target: "dj",
                "[Worker({})] Error while connecting to {}: {e} (retrying in {:.1}s)",
                worker.name(),
                db.url(),
                wait.as_secs_f64()
            )
        },
    )?;
    db.store().check_writable()
}

/// No more claims: unstarted jobs go back, running ones get `shutdown_timeout` (all the time
/// they need when the worker ends because work ran out), overrunning ones until then too.
/// Returns the shutdown deadline.
fn shut_down(shared: &Shared, outcomes: &Sender<Message>) -> Instant {
    release_unstarted(shared, outcomes);
    let wait = if shared.stop.is_set() {
        shared.config.shutdown_timeout
    } else {
        Duration::from_secs(365 * 24 * 3600)
    };
    let deadline = Instant::now() + wait;
    if shared.slots.wait_in_flight_below(1, wait) > 0 {
        release_unstarted(shared, outcomes);
        interrupt_running(shared);
    }
    shared.slots.close();
    wait_for_overrunning(shared, deadline);
    deadline
}

/// Claimed jobs no executor has started: unlocked without counting an attempt.
fn release_unstarted(shared: &Shared, outcomes: &Sender<Message>) {
    for (owner, id) in shared.slots.take_unstarted() {
        let _ = outcomes.send(Message::Write(owner, Outcome::Release(id)));
    }
}

/// Jobs still running at the shutdown timeout: unlocked now so another worker can take
/// them, counted as interrupted (not as failed attempts).
fn interrupt_running(shared: &Shared) {
    for job in shared.slots.interrupt_running() {
        let label = job_label(&job.name, job.row.id, job.row.queue.as_deref());
        match shared.db.store().job_unlock(&job.owner, &[job.row.id]) {
            Ok(_) => {
                shared.say_error(format_args!(
                    "{label} INTERRUPTED: still running after the {}s shutdown timeout; unlocked for another worker",
                    shared.config.shutdown_timeout.as_secs()
                ));
                shared.interrupted.fetch_add(1, Ordering::SeqCst);
                shared.emit(|| Event::JobFinished {
                    id: job.row.id,
                    name: job.row.name.clone(),
                    outcome: super::JobOutcome::Interrupted,
                    runtime: job.runtime,
                });
            }
            Err(e) => shared.say_error(format_args!(
                "Error while unlocking interrupted {label}: {e}; it is freed once this worker's entry is gone"
            )),
        }
    }
}

/// Jobs that overran their max_run_time keep their locks until their code returns; give
/// them until `deadline` to do so, so that their locks are released by this worker.
fn wait_for_overrunning(shared: &Shared, deadline: Instant) {
    loop {
        let overrunning = shared.slots.overrunning_count();
        if overrunning == 0 {
            return;
        }
        if Instant::now() >= deadline {
            shared.say_error(format_args!(
                "{overrunning} job(s) still running past their max_run_time at exit; they are freed once this worker's entry is gone"
            ));
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
