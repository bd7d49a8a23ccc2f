//! The stored-handler format: a job as the `handler` column holds it,
//! `{"job": NAME, "args": FIELDS}`, written by every enqueue and read by every load.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::job::Job;

/// The stored form of a job: `{"job": NAME, "args": FIELDS}`, with the enqueuer's trace
/// context as `"traceparent"` when there is one (see `crate::trace`).
#[derive(Serialize)]
struct HandlerOut<'a, J> {
    job: &'a str,
    args: &'a J,
    #[serde(skip_serializing_if = "Option::is_none")]
    traceparent: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct HandlerIn<'a> {
    #[serde(borrow)]
    pub(crate) job: &'a str,
    #[serde(borrow)]
    pub(crate) args: &'a RawValue,
    #[serde(default, borrow)]
    pub(crate) traceparent: Option<&'a str>,
}

/// Serializes a job into its `handler` text.
pub(crate) fn handler_of<J: Job>(job: &J) -> Result<String> {
    let text = serde_json::to_string(&HandlerOut {
        job: J::NAME,
        args: job,
        traceparent: crate::trace::current(),
    })
    .map_err(|source| Error::Serialize {
        name: J::NAME,
        source,
    })?;
    if text.len() > crate::MAX_HANDLER_BYTES {
        return Err(Error::PayloadTooLarge {
            name: J::NAME,
            size: text.len(),
            limit: crate::MAX_HANDLER_BYTES,
        });
    }
    Ok(text)
}

impl<'a> HandlerIn<'a> {
    /// The name and the raw fields of a stored handler.
    pub(crate) fn parse(handler: &'a str) -> serde_json::Result<Self> {
        serde_json::from_str(handler)
    }
}

/// The trace context stored with a handler, if any (a look for the key first, so that a
/// handler without one is not parsed).
pub(crate) fn traceparent_of(handler: &str) -> Option<&str> {
    if !handler.contains("\"traceparent\"") {
        return None;
    }
    HandlerIn::parse(handler).ok()?.traceparent
}

/// The fields of a stored handler, as job type `J`.
pub(crate) fn args_of<J: Job>(handler: &str) -> serde_json::Result<J> {
    serde_json::from_str(HandlerIn::parse(handler)?.args.get())
}
