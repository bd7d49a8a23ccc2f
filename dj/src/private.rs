//! What the macros' generated code reaches, and nothing else: `::dj::__private::...`.
//! Not part of dj's public API; it may change in any release.

pub use crate::job::JobOptions;
pub use crate::registry::Registration;
pub use inventory;
pub use serde;
pub use std::time::Duration;
