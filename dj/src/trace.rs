//! Traces across the queue: the enqueueing code's W3C trace context is stored with the job,
//! and each attempt's `dj.job` span continues it, so that one request's trace shows the jobs
//! it caused. dj depends on no OpenTelemetry crate: the app gives it a [`Propagator`] (a few
//! lines over `opentelemetry` and `tracing-opentelemetry`, shown in the README) with
//! [`set_propagator`]. Without one, nothing is stored.

use std::sync::OnceLock;

use crate::error::{Error, Result};

/// What dj asks of the app's tracing setup to carry a trace across the queue.
pub trait Propagator: Send + Sync + 'static {
    /// The W3C `traceparent` of the code enqueueing now (its current span's context), if it
    /// is in a trace: stored with the job.
    fn current(&self) -> Option<String>;
    /// Makes `span`, an attempt's `dj.job` span (not yet entered), continue the trace of
    /// `traceparent`, the enqueuer's: as its parent, or through a link (OpenTelemetry's
    /// advice for messaging, where a job may run long after the request ended).
    fn continue_trace(&self, span: &tracing::Span, traceparent: &str);
}

static PROPAGATOR: OnceLock<Box<dyn Propagator>> = OnceLock::new();

/// Installs the process's [`Propagator`]: call it once at start, in the app (for enqueues)
/// and in its worker (for attempts). A second call fails.
pub fn set_propagator(propagator: impl Propagator) -> Result<()> {
    PROPAGATOR.set(Box::new(propagator)).map_err(|_| {
        Error::Invalid("dj::trace::set_propagator was called twice; call it once at start".into())
    })
}

/// The installed propagator, if any.
pub(crate) fn propagator() -> Option<&'static dyn Propagator> {
    PROPAGATOR.get().map(|p| &**p)
}

/// The trace context to store with a job enqueued now: the propagator's, if it is a valid
/// W3C `traceparent` (an invalid one is dropped, and said at debug level).
pub(crate) fn current() -> Option<String> {
    let traceparent = propagator()?.current()?;
    if is_traceparent(&traceparent) {
        Some(traceparent)
    } else {
        tracing::debug!(target: "dj", %traceparent, "not a W3C traceparent: not stored with the job");
        None
    }
}

/// Whether `text` is a W3C `traceparent` of version 00: `00-` 32 hex digits (not all zero)
/// `-` 16 hex digits (not all zero) `-` 2 hex digits.
pub(crate) fn is_traceparent(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    matches!(parts.as_slice(), [version, trace, parent, flags]
        if *version == "00" && hex(trace, 32) && nonzero(trace) && hex(parent, 16)
            && nonzero(parent) && hex(flags, 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_are_checked() {
        assert!(is_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        for bad in [
            "",
            "garbage",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(!is_traceparent(bad), "{bad}");
        }
    }
}
