//! What the macros' generated code reaches, and nothing else: `::dj::__private::...`.
//! Not part of dj's public API; it may change in any release.

pub use crate::job::JobOptions;
pub use crate::registry::Registration;
pub use inventory;
pub use serde;
pub use std::time::Duration;

/// Proves at compile time that a field can be stored; its span points at the field.
pub const fn assert_field_serialize<T: serde::Serialize + serde::de::DeserializeOwned>() {}

/// Proves at compile time that a `#[dj::job]` argument can be handed to the function again
/// on each attempt.
pub const fn assert_arg_clone<T: Clone>() {}
