//! What the tracing tests' recording subscribers share: a visitor that keeps a span's or an
//! event's fields as text.

use std::collections::BTreeMap;

use tracing::field::{Field, Visit};

/// Records each field visited into the map, by name, as its `Debug` text without quotes.
#[derive(Debug)]
pub struct Fields<'a>(pub &'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }
}
