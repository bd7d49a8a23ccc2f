//! The rules that dj-macros checks at compile time and the runtime checks again, each written
//! once. Each file uses only std and the crates both depend on, and no `crate::` path, so
//! that the same file compiles in both crates: dj-macros reaches these files through its
//! `src/rules` symlink (as serde_derive includes serde_derive_internals). Each rule returns a
//! plain error; the crate that calls it writes the message.

pub(crate) mod duration;
pub(crate) mod queue_name;
pub(crate) mod rate;
