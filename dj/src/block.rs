//! Running a future to completion from sync code, wherever that code runs: on a thread of its
//! own with a current-thread tokio runtime (timers and I/O enabled), so that it works outside
//! any runtime and inside one alike (where `Runtime::block_on` would panic). The calling thread
//! blocks until the future is done.

use std::future::Future;

/// Runs `future` on a fresh thread and runtime, and returns its output.
pub(crate) fn on_own_thread<F>(future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("dj-block-on".into())
            .spawn_scoped(scope, || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("build a tokio runtime")
                    .block_on(future)
            })
            .expect("spawn a thread")
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
