//! Every mistake found while reading the input, reported together (like serde_derive's `Ctxt`).

/// Collects errors so that one compile shows all of them, each at its own token.
///
/// A drop-bomb, as serde_derive's `Ctxt`: dropping it before [`Errors::finish`] has handed
/// the errors over panics, so that a path which forgets to report them fails loudly in the
/// tests instead of quietly expanding bad input.
#[derive(Default)]
pub(crate) struct Errors {
    first: Option<syn::Error>,
    finished: bool,
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
    pub(crate) fn finish(mut self) -> Result<(), syn::Error> {
        self.finished = true;
        self.first.take().map_or(Ok(()), Err)
    }
}

impl Drop for Errors {
    fn drop(&mut self) {
        if !self.finished && !std::thread::panicking() {
            panic!("dj-macros: the collected errors were dropped without `Errors::finish`");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Errors;

    #[test]
    fn finish_defuses() {
        let mut errors = Errors::default();
        errors.push(syn::Error::new(proc_macro2::Span::call_site(), "one"));
        errors.push(syn::Error::new(proc_macro2::Span::call_site(), "two"));
        let error = errors.finish().unwrap_err();
        assert_eq!(error.into_iter().count(), 2);
        assert!(Errors::default().finish().is_ok());
    }

    #[test]
    #[should_panic(expected = "without `Errors::finish`")]
    fn unchecked_panics() {
        drop(Errors::default());
    }
}
