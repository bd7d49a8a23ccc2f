//! Reading and awaiting what became of a job: [`Db::job_result`] and the waits. A wait holds
//! no connection between its looks: on PostgreSQL one LISTEN connection per `Db` (its clones
//! share it) wakes every wait whose job's outcome was stored (and the waits look every half second besides,
//! for a job that succeeds without recording a result sends no NOTIFY); on SQLite, and
//! behind a transaction pooler without a `listen_url`, they look after 5 ms, then twice as
//! long after each look, up to every 100 ms.

use std::time::{Duration, Instant};

use tokio::sync::broadcast::{self, error::RecvError};

use crate::db::Db;
use crate::error::Result;
use crate::model::{JobId, JobResult, StepState};

/// How often a wait looks when notifications wake it.
const LOOK_EVERY_LISTENING: Duration = Duration::from_millis(500);
/// How soon a wait that nothing wakes looks again after its first look; the pause doubles
/// after each look, up to [`LOOK_EVERY_POLLING`].
const FIRST_POLL: Duration = Duration::from_millis(5);
/// How often a wait that nothing wakes looks at most.
const LOOK_EVERY_POLLING: Duration = Duration::from_millis(100);

impl Db {
    /// What became of job `id`: [`JobResult::Pending`] while its row waits, runs or retries;
    /// its recorded value once it succeeded ([`crate::Context::set_result`]); its error once
    /// it failed for good; [`JobResult::Gone`] when neither its row nor a result is left.
    pub fn job_result(&self, id: JobId) -> Result<JobResult> {
        // The row first: a job's row is deleted in the transaction that stores its result,
        // so a row found gone here has its result stored already.
        if let Some(row) = self.job(id)? {
            return Ok(match row.failed_at {
                Some(_) => JobResult::Failed {
                    error: row.last_error.unwrap_or_default(),
                },
                None => JobResult::Pending,
            });
        }
        if let Some(result) = self.store().result_get(id)? {
            return Ok(result);
        }
        Ok(self.held_step_result(id)?.unwrap_or(JobResult::Gone))
    }

    /// Blocks until job `id` has finished (see [`Db::job_result`]) or `timeout` has passed,
    /// then says what became of it (`Pending` after the timeout). An async app uses
    /// `wait_for_result_async`.
    pub fn wait_for_result(&self, id: JobId, timeout: Duration) -> Result<JobResult> {
        let mut wait = Wait::new(self, id, timeout);
        loop {
            let result = self.job_result(id)?;
            let Some(pause) = wait.pause_after(&result) else {
                return Ok(result);
            };
            crate::io::block_on(wait.sleep(pause));
        }
    }

    /// [`Db::wait_for_result`] without blocking the async executor: each look runs on dj's
    /// own threads, and between looks the future holds no connection.
    #[cfg(feature = "tokio")]
    pub async fn wait_for_result_async(&self, id: JobId, timeout: Duration) -> Result<JobResult> {
        let mut wait = Wait::new(self, id, timeout);
        loop {
            let db = self.clone();
            let look = crate::io::handle().spawn_blocking(move || db.job_result(id));
            let result = look.await.map_err(|e| {
                crate::Error::Invalid(format!("looking for job {id}'s result failed: {e}"))
            })??;
            let Some(pause) = wait.pause_after(&result) else {
                return Ok(result);
            };
            crate::io::InRuntime::new(wait.sleep(pause)).await;
        }
    }

    /// What became of a held workflow step, which has no row yet: pending while it waits,
    /// failed once cancelled. `None` if `id` is no workflow step, or a step that has a row.
    pub(crate) fn held_step_result(&self, id: JobId) -> Result<Option<JobResult>> {
        Ok(match self.store().workflow_step_state(id)? {
            Some(StepState::Waiting) => Some(JobResult::Pending),
            Some(StepState::Cancelled) => Some(JobResult::Failed {
                error: "cancelled: a step it runs after failed, or its workflow was cancelled"
                    .into(),
            }),
            _ => None,
        })
    }
}

/// One wait for a job's result, between its looks: until when, and what wakes it.
struct Wait {
    id: JobId,
    deadline: Instant,
    /// The ids announced as stored (PostgreSQL's LISTEN), or none: then it polls.
    wakeups: Option<broadcast::Receiver<JobId>>,
    /// The next pause when polling: [`FIRST_POLL`], doubling up to [`LOOK_EVERY_POLLING`].
    poll: Duration,
}

impl Wait {
    fn new(db: &Db, id: JobId, timeout: Duration) -> Self {
        Wait {
            id,
            deadline: Instant::now() + timeout,
            wakeups: db.store().result_wakeups(),
            poll: FIRST_POLL,
        }
    }

    /// After a look that found `result`: `None` if the wait is over (the job finished, or the
    /// deadline passed), else how long to wait before the next look (woken by
    /// notifications, up to [`LOOK_EVERY_LISTENING`]; polling, the doubling pause).
    fn pause_after(&mut self, result: &JobResult) -> Option<Duration> {
        let now = Instant::now();
        if result.is_finished() || now >= self.deadline {
            return None;
        }
        let pause = match self.wakeups {
            Some(_) => LOOK_EVERY_LISTENING,
            None => {
                let pause = self.poll;
                self.poll = (pause * 2).min(LOOK_EVERY_POLLING);
                pause
            }
        };
        Some(pause.min(self.deadline - now))
    }

    /// Waits `pause`, or less if the job is announced (on dj's runtime).
    async fn sleep(&mut self, pause: Duration) {
        match self.wakeups.as_mut() {
            Some(ids) => woken(ids, self.id, pause).await,
            None => tokio::time::sleep(pause).await,
        }
    }
}

/// Waits up to `pause` for `id` to be announced (or for announcements to have been missed, or
/// the connection to be lost: the caller looks again either way).
async fn woken(ids: &mut broadcast::Receiver<JobId>, id: JobId, pause: Duration) {
    let announced = async {
        loop {
            match ids.recv().await {
                Ok(announced) if announced != id => continue,
                Ok(_) | Err(RecvError::Lagged(_)) => return,
                Err(RecvError::Closed) => {
                    // Lost: poll from now on (the next wait starts it again).
                    std::future::pending::<()>().await
                }
            }
        }
    };
    let _ = tokio::time::timeout(pause, announced).await;
}
