//! How idle workers hear of new work without LISTEN: a wake-up number that grows whenever
//! rows may have become claimable (an insert moves `delayed_jobs`' AUTOINCREMENT sequence; a
//! retry, run now, unlock, release or resumed queue moves the `dj_wakeups` counter in its
//! own transaction), read every `WAKEUP_POLL` by an idle worker.

use std::time::Duration;

use super::{sql, SqliteStore};
use crate::error::Result;
use crate::stop::StopFlag;
use crate::store::wait_for_wakeup;

/// How often an idle SQLite worker reads the `dj_wakeups` counter.
const WAKEUP_POLL: Duration = Duration::from_millis(100);

impl SqliteStore {
    /// Runs `update`, which makes rows claimable (retry, run now, unlock, release, resume),
    /// and, when it changed any, moves the `dj_wakeups` counter in the same transaction.
    /// Returns the rows changed.
    pub(super) fn waking(
        &self,
        update: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<usize>,
    ) -> Result<u64> {
        self.write(|tx| {
            let n = update(tx)?;
            if n > 0 {
                tx.prepare_cached(sql::WAKE)?.execute([])?;
            }
            Ok(n as u64)
        })
    }

    /// The wake-up number (`None` if it cannot be read: a schema before 0009).
    fn wakeups(&self) -> Option<i64> {
        self.run(|conn| {
            conn.prepare_cached(sql::WAKEUPS)?
                .query_row([], |r| r.get(0))
        })
        .ok()
    }

    /// Reads the wake-up number every `WAKEUP_POLL` (two rows, no write): true as soon as it
    /// moves, false after `timeout` or once `stop` is set.
    pub(super) fn wait(&self, timeout: Duration, stop: &StopFlag) -> bool {
        let seen = self.wakeups();
        wait_for_wakeup(seen, || self.wakeups(), WAKEUP_POLL, timeout, stop)
    }
}
