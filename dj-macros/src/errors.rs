//! Every mistake found while reading the input, reported together (like serde_derive's `Ctxt`).

/// Collects errors so that one compile shows all of them, each at its own token.
#[derive(Default)]
pub(crate) struct Errors {
    first: Option<syn::Error>,
}

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.first {
            Some(first) => first.combine(error),
            None => self.first = Some(error),
        }
    }

    /// Records a mistake at `tokens` (a token, or a whole node from its first token to its last).
    pub(crate) fn at(&mut self, tokens: impl quote::ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// `Err` with every collected mistake, or `Ok` if there were none.
    pub(crate) fn finish(self) -> Result<(), syn::Error> {
        self.first.map_or(Ok(()), Err)
    }
}
