//! How idle workers hear of new work without LISTEN, as on SQLite: a wake-up number that
//! grows whenever rows may have become claimable (an insert raises the highest id; a retry,
//! run now, unlock, release or resumed queue moves the `dj_wakeups` counter in its own
//! transaction), read every `WAKEUP_POLL` by an idle worker: two index look-ups, no write.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;

use super::{sql, MysqlStore};
use crate::error::Result;
use crate::stop::StopFlag;

/// How often an idle MySQL worker reads the wake-up number.
const WAKEUP_POLL: Duration = Duration::from_millis(50);

impl MysqlStore {
    /// Runs `update`, which makes rows claimable, and, when it changed any, moves the
    /// `dj_wakeups` counter in the same transaction. Returns the rows changed.
    pub(super) fn waking(
        &self,
        mut update: impl FnMut(&mut mysql::Transaction<'_>) -> mysql::Result<u64>,
    ) -> Result<u64> {
        self.write(|tx| {
            let n = update(tx)?;
            if n > 0 {
                tx.query_drop(sql::WAKE)?;
            }
            Ok(n)
        })
    }

    /// The wake-up number (`None` if it cannot be read).
    fn wakeups(&self) -> Option<i64> {
        self.run(|conn| conn.query_first::<i64, _>(sql::WAKEUPS))
            .ok()
            .flatten()
    }

    /// Reads the wake-up number every `WAKEUP_POLL`: true as soon as it moves from the one
    /// the last claim read (so that a change between that claim and this wait counts), false
    /// after `timeout` or once `stop` is set.
    pub(super) fn wait(&self, timeout: Duration, stop: &StopFlag) -> bool {
        let deadline = Instant::now() + timeout;
        let claimed = self.seen.swap(i64::MIN, Ordering::Relaxed);
        let Some(seen) = (claimed != i64::MIN)
            .then_some(claimed)
            .or_else(|| self.wakeups())
        else {
            stop.sleep(timeout);
            return false;
        };
        if self.wakeups().is_some_and(|now| now != seen) {
            return true;
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || stop.is_set() {
                return false;
            }
            stop.sleep(left.min(WAKEUP_POLL));
            if self.wakeups().is_some_and(|now| now != seen) {
                return !stop.is_set();
            }
        }
    }
}
