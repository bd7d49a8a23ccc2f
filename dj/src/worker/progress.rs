//! The progress flusher: every [`FLUSH_EVERY`], the latest report of each job that reported
//! since the last pass is written in one statement, and the progress of jobs that ended is
//! deleted (see `crate::progress`).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::Shared;
use crate::stop::StopFlag;

/// How often the flusher writes.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The flusher: a pass every [`FLUSH_EVERY`] until `done`, and a last one then.
pub(super) fn spawn(shared: Arc<Shared>, done: StopFlag) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("dj-progress".into())
        .spawn(move || {
            while !done.is_set() {
                done.sleep(FLUSH_EVERY);
                flush(&shared);
            }
        })
        .expect("spawn the progress thread")
}

fn flush(shared: &Shared) {
    let (reports, ended) = shared.progress.take();
    if reports.is_empty() && ended.is_empty() {
        return;
    }
    let store = shared.db.store();
    let written = (if reports.is_empty() {
        Ok(())
    } else {
        store.progress_write(&reports)
    })
    .and_then(|()| {
        if ended.is_empty() {
            Ok(())
        } else {
            store.progress_clear(&ended)
        }
    });
    if let Err(e) = written {
        shared.say_error(format_args!("Error while writing job progress: {e}"));
        shared.progress.restore(reports, ended);
    }
}
