//! How idle workers hear of new work without LISTEN, as on SQLite: a wake-up number that
//! grows whenever rows may have become claimable (an insert raises the highest id; a retry,
//! run now, unlock, release or resumed queue moves the `dj_wakeups` counter in its own
//! transaction), read every `WAKEUP_POLL` by an idle worker: two index look-ups, no write.

use std::sync::atomic::Ordering;
use std::time::Duration;

use mysql::prelude::Queryable;

use super::{sql, MysqlStore};
use crate::error::Result;
use crate::stop::StopFlag;
use crate::store::wait_for_wakeup;

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
        let claimed = self.seen.swap(i64::MIN, Ordering::Relaxed);
        if claimed == i64::MIN {
            let seen = self.wakeups();
            return wait_for_wakeup(seen, || self.wakeups(), WAKEUP_POLL, timeout, stop);
        }
        if self.wakeups().is_some_and(|now| now != claimed) {
            return true;
        }
        wait_for_wakeup(Some(claimed), || self.wakeups(), WAKEUP_POLL, timeout, stop)
    }
}
