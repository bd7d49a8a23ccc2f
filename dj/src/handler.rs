//! The stored-handler format: a job as the `handler` column holds it,
//! `{"job": NAME, "args": FIELDS}`, written by every enqueue and read by every load.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::job::Job;

/// The stored form of a job: `{"job": NAME, "args": FIELDS}`, with the enqueuer's trace
/// context as `"traceparent"` when there is one (see `crate::trace`).
/// An encrypted type's fields are `"encrypted": "v1:ID:DATA"` instead of `args` (see
/// `crate::crypt`).
#[derive(Serialize)]
struct HandlerOut<'a, J> {
    job: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    args: Option<&'a J>,
    #[serde(skip_serializing_if = "Option::is_none")]
    encrypted: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    traceparent: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct HandlerIn<'a> {
    #[serde(borrow)]
    pub(crate) job: &'a str,
    /// Present (`null` too, a unit struct's fields) unless the fields are encrypted.
    #[serde(default, borrow, deserialize_with = "present")]
    pub(crate) args: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub(crate) encrypted: Option<&'a str>,
    #[serde(default, borrow)]
    pub(crate) traceparent: Option<&'a str>,
}

/// Serializes a job into its `handler` text.
pub(crate) fn handler_of<J: Job>(job: &J) -> Result<String> {
    let serialize_error = |source| Error::Serialize {
        name: J::NAME,
        source,
    };
    let (args, encrypted) = if J::OPTIONS.encrypted {
        let plain = serde_json::to_string(job).map_err(serialize_error)?;
        (None, Some(crate::crypt::seal(J::NAME, &plain)?))
    } else {
        (Some(job), None)
    };
    let text = serde_json::to_string(&HandlerOut {
        job: J::NAME,
        args,
        encrypted,
        traceparent: crate::trace::current(),
    })
    .map_err(serialize_error)?;
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

/// A field that is there, whatever its value: `Some` even for `null`, which serde's `Option`
/// would make `None` (a missing field is `None` through `#[serde(default)]`).
fn present<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<&'a RawValue>, D::Error> {
    <&'a RawValue>::deserialize(deserializer).map(Some)
}

impl HandlerIn<'_> {
    /// The job's fields as JSON text: decrypted when they are stored encrypted.
    pub(crate) fn fields(&self) -> std::result::Result<std::borrow::Cow<'_, str>, String> {
        match (self.args, self.encrypted) {
            (Some(args), _) => Ok(std::borrow::Cow::Borrowed(args.get())),
            (None, Some(sealed)) => {
                crate::crypt::open(self.job, sealed).map(std::borrow::Cow::Owned)
            }
            (None, None) => Err(format!("job {}: its handler has no `args`", self.job)),
        }
    }
}

/// The fields of a stored handler, as job type `J`.
pub(crate) fn args_of<J: Job>(handler: &str) -> std::result::Result<J, String> {
    let parsed = HandlerIn::parse(handler).map_err(|e| e.to_string())?;
    serde_json::from_str(&parsed.fields()?).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_structs_null_fields_are_fields() {
        let unit = HandlerIn::parse(r#"{"job":"Unit","args":null}"#).unwrap();
        assert_eq!(unit.fields().unwrap(), "null");
        let none = HandlerIn::parse(r#"{"job":"Unit"}"#).unwrap();
        assert!(none.fields().unwrap_err().contains("no `args`"));
    }
}
