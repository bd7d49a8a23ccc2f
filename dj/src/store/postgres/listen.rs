//! LISTEN/NOTIFY wake-ups: a worker idle between claims LISTENs on a connection of its own
//! (to `listen_url` if given), and polls where it cannot (behind a transaction pooler without
//! a `listen_url`, or while that connection is down).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, Client, NoTls};

use super::pool::Statements;
use super::sql::{CHANNEL, RESULTS_CHANNEL};
use super::PgStore;
use crate::error::Result;
use crate::io;
use crate::model::JobId;
use crate::stop::StopFlag;
use crate::store::Wakeups;

/// A direct server for LISTEN, and how dj shows it.
pub(crate) struct ListenAt {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) shown: String,
}

/// The worker's LISTEN connection: the client, and the wake-ups its connection task hears.
pub(crate) struct Listener {
    _client: Client,
    wakeups: mpsc::Receiver<()>,
}

impl PgStore {
    /// How wake-ups arrive, where the configuration decided it.
    pub(super) fn wakeups_configured(&self) -> Option<Wakeups> {
        match (&self.listen_at, self.statements) {
            (Some(at), _) => Some(Wakeups::Listen(at.shown.clone())),
            (None, Statements::Unnamed) => Some(Wakeups::Poll(
                "pooler=transaction: LISTEN needs a server session of its own; \
                 add a direct `listen_url` to the url for NOTIFY wake-ups",
            )),
            (None, Statements::Prepared) => None,
        }
    }

    /// Waits for a wake-up until `timeout`; true if woken. The first call only starts
    /// listening (and answers true: jobs may have arrived before it listened).
    pub(super) fn wait_for_wakeup(&self, timeout: Duration, stop: &StopFlag) -> bool {
        if matches!(self.wakeups_configured(), Some(Wakeups::Poll(_))) {
            stop.sleep(timeout);
            return false;
        }
        let deadline = Instant::now() + timeout;
        let mut slot = self.listener.lock().unwrap_or_else(|e| e.into_inner());
        let Some(listener) = slot.as_mut() else {
            match io::block_on(self.listen()) {
                Ok(listener) => {
                    *slot = Some(listener);
                    // Jobs may have arrived before we listened: look again at once.
                    return true;
                }
                Err(e) => {
                    tracing::debug!("LISTEN unavailable, polling instead: {e}");
                    drop(slot);
                    stop.sleep(timeout);
                    return false;
                }
            }
        };
        match listener.wait(deadline, stop) {
            Some(woken) => woken,
            None => {
                tracing::debug!("LISTEN connection lost, polling until it is back");
                *slot = None;
                false
            }
        }
    }

    /// A connection of its own (not pooled; to `listen_url` if given) that LISTENs; its task
    /// forwards each notification as a wake-up, and ends (closing the channel) when the
    /// connection does.
    async fn listen(&self) -> Result<Listener> {
        let (wake, wakeups) = mpsc::channel();
        let (client, _connection) =
            listen_on(self.listen_config(), self.limits, CHANNEL, move |_| {
                wake.send(()).is_ok()
            })
            .await
            .map_err(|e| match e {
                ListenError::Timeout(what, after) => self.timeout(what, after),
                ListenError::Postgres(e) => self.error(e),
            })?;
        Ok(Listener {
            _client: client,
            wakeups,
        })
    }

    /// Where LISTEN connects: `listen_url`, or the pool's server.
    fn listen_config(&self) -> tokio_postgres::Config {
        self.listen_at
            .as_ref()
            .map_or(self.pool.config(), |at| &at.config)
            .clone()
    }

    /// The ids of jobs whose result (or failure for good) was just stored, as NOTIFY on
    /// [`RESULTS_CHANNEL`] announces them: one LISTEN connection serves every wait on this
    /// store (a `Db` and its clones), started by the first and again by a wait after it was lost (at most every 5
    /// s). `None` where LISTEN is not available (behind a transaction pooler without a
    /// `listen_url`, or while it cannot be started): the waits poll.
    pub(super) fn result_wakeups(&self) -> Option<broadcast::Receiver<JobId>> {
        if matches!(self.wakeups_configured(), Some(Wakeups::Poll(_))) {
            return None;
        }
        let mut slot = self.results.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(live) = slot.as_ref() {
            if !live.task.is_finished() {
                return Some(live.ids.subscribe());
            }
            if live.started.elapsed() < Duration::from_secs(5) {
                return None;
            }
        }
        let (ids, receiver) = broadcast::channel(1024);
        let sender = ids.clone();
        let (config, limits) = (self.listen_config(), self.limits);
        let task = io::handle().spawn(async move {
            // A payload is one id, or several separated by commas. No waiter at the moment
            // is not an error: keep listening.
            let forward = move |payload: &str| {
                for id in payload.split(',').filter_map(|id| id.parse().ok()) {
                    let _ = sender.send(id);
                }
                true
            };
            match listen_on(config, limits, RESULTS_CHANNEL, forward).await {
                // Listening until the connection ends; the client keeps it open.
                Ok((_client, connection)) => drop(connection.await),
                Err(e) => tracing::debug!("LISTEN {RESULTS_CHANNEL} unavailable, polling: {e}"),
            }
        });
        *slot = Some(ResultListener {
            ids,
            task,
            started: Instant::now(),
        });
        Some(receiver)
    }
}

/// The LISTEN connection that wakes waits for results ([`PgStore::result_wakeups`]).
pub(crate) struct ResultListener {
    ids: broadcast::Sender<JobId>,
    /// Ends when the connection does.
    task: tokio::task::JoinHandle<()>,
    started: Instant,
}

impl Drop for ResultListener {
    /// The connection closes with the `Db` that opened it.
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why a LISTEN connection could not be opened.
#[derive(Debug)]
enum ListenError {
    Timeout(&'static str, Duration),
    Postgres(tokio_postgres::Error),
}

impl std::fmt::Display for ListenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenError::Timeout(what, after) => write!(f, "no answer {what} within {after:?}"),
            ListenError::Postgres(e) => write!(f, "{e}"),
        }
    }
}

/// Connects (not through the pool) and LISTENs on `channel`; a task of its own hands each
/// notification's payload to `forward` until that returns false or the connection ends
/// (the returned handle completes then). The client keeps the connection open.
async fn listen_on(
    config: tokio_postgres::Config,
    limits: super::Limits,
    channel: &'static str,
    mut forward: impl FnMut(&str) -> bool + Send + 'static,
) -> std::result::Result<(Client, tokio::task::JoinHandle<()>), ListenError> {
    let (client, mut connection) = tokio::time::timeout(limits.connect, config.connect(NoTls))
        .await
        .map_err(|_| ListenError::Timeout("to a connection attempt", limits.connect))?
        .map_err(ListenError::Postgres)?;
    let task = tokio::spawn(async move {
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if !forward(n.payload()) {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!("LISTEN connection failed: {e}");
                    return;
                }
            }
        }
    });
    tokio::time::timeout(
        limits.statement,
        client.batch_execute(&format!("LISTEN {channel}")),
    )
    .await
    .map_err(|_| ListenError::Timeout("a statement", limits.statement))?
    .map_err(ListenError::Postgres)?;
    Ok((client, task))
}

impl Listener {
    /// Waits for a wake-up until `deadline` or a stop, in slices so that a stop is seen
    /// soon: `Some(true)` if woken (what else arrived is drained: one is enough), `Some(false)`
    /// if not, `None` if the connection was lost.
    fn wait(&self, deadline: Instant, stop: &StopFlag) -> Option<bool> {
        loop {
            let now = Instant::now();
            if stop.is_set() || now >= deadline {
                return Some(false);
            }
            let slice = (deadline - now).min(Duration::from_millis(100));
            match self.wakeups.recv_timeout(slice) {
                Ok(()) => {
                    while self.wakeups.try_recv().is_ok() {}
                    return Some(true);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
            }
        }
    }
}
