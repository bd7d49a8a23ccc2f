//! The runtime dj's own database I/O runs on: a small tokio runtime of dj's, built on first
//! use, so the sync API works the same from a plain thread, from inside the app's tokio
//! runtime (either flavour) and from a worker's executor threads.
//!
//! A sync call blocks its thread until its future is done (with [`block_on`], which never
//! starts a runtime, so it cannot panic inside one); an async call awaits the same future
//! without blocking (with [`InRuntime`]). Either way, timers and connection tasks belong to
//! dj's runtime, so the caller's runtime needs no particular features.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use tokio::runtime::{Handle, Runtime};

/// dj's I/O runtime: two threads drive every connection of the process.
pub(crate) fn handle() -> &'static Handle {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("dj-io")
                .enable_io()
                .enable_time()
                .build()
                .expect("dj could not start its I/O runtime (no threads or no epoll?)")
        })
        .handle()
}

/// Runs `future` to completion on this thread, with dj's runtime as the context for its
/// timers and spawns. Blocks the calling thread (an async caller should await the `_async`
/// API instead), but never panics inside a tokio runtime.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let _context = handle().enter();
    // Unconstrained: called inside a task of the app's runtime, this thread shares that
    // task's cooperative budget, and once a few hundred polls had spent it every tokio timer
    // and socket would answer "not yet" and wake at once: a sync call would spin forever.
    futures_executor::block_on(tokio::task::unconstrained(future))
}

/// A future polled with dj's runtime as its context: awaited from any executor, its timers
/// and connection tasks still run on dj's runtime.
#[cfg_attr(not(all(feature = "postgres", feature = "tokio")), allow(dead_code))]
pub(crate) struct InRuntime<'a, T> {
    future: Pin<Box<dyn Future<Output = T> + Send + 'a>>,
}

impl<'a, T> InRuntime<'a, T> {
    #[cfg_attr(not(all(feature = "postgres", feature = "tokio")), allow(dead_code))]
    pub(crate) fn new(future: impl Future<Output = T> + Send + 'a) -> Self {
        InRuntime {
            future: Box::pin(future),
        }
    }
}

impl<T> Future for InRuntime<'_, T> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let _context = handle().enter();
        self.future.as_mut().poll(cx)
    }
}

impl<T> std::fmt::Debug for InRuntime<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InRuntime")
    }
}
