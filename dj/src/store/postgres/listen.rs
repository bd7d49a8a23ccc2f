//! LISTEN/NOTIFY wake-ups: a worker idle between claims LISTENs on a connection of its own
//! (to `listen_url` if given), and polls where it cannot (behind a transaction pooler without
//! a `listen_url`, or while that connection is down).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio_postgres::{AsyncMessage, Client, NoTls};

use super::pool::Statements;
use super::sql::CHANNEL;
use super::PgStore;
use crate::error::Result;
use crate::io;
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
        let bound = self.limits.connect;
        let config = self
            .listen_at
            .as_ref()
            .map_or(self.pool.config(), |at| &at.config);
        let (client, mut connection) = tokio::time::timeout(bound, config.connect(NoTls))
            .await
            .map_err(|_| self.timeout("to a connection attempt", bound))?
            .map_err(|e| self.error(e))?;
        let (wake, wakeups) = mpsc::channel();
        tokio::spawn(async move {
            while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => {
                        if wake.send(()).is_err() {
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
            self.limits.statement,
            client.batch_execute(&format!("LISTEN {CHANNEL}")),
        )
        .await
        .map_err(|_| self.timeout("a statement", self.limits.statement))?
        .map_err(|e| self.error(e))?;
        Ok(Listener {
            _client: client,
            wakeups,
        })
    }
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
