//! Code generation, one file per macro. It reads only the model (`ast.rs`, `attr.rs`), and
//! names the runtime only through `::dj::__private` and dj's public traits.

pub(crate) mod derive;
pub(crate) mod job_fn;

use proc_macro2::TokenStream;
use quote::quote;
use syn::Ident;

use crate::attr::Attrs;

/// `impl ::dj::Job` and its registration: what both macros end with.
fn job_impl(ident: &Ident, name: &str, attrs: &Attrs) -> TokenStream {
    let aliases = &attrs.aliases;
    let options = options(attrs);
    quote! {
        #[automatically_derived]
        impl ::dj::Job for #ident {
            const NAME: &'static str = #name;
            const ALIASES: &'static [&'static str] = &[#(#aliases),*];
            const OPTIONS: ::dj::__private::JobOptions = #options;
        }
        ::dj::__private::inventory::submit! {
            ::dj::__private::Registration::of::<#ident>()
        }
    }
}

/// `JobOptions::new()` with a call for each setting given, and only those.
fn options(attrs: &Attrs) -> TokenStream {
    let queue = attrs.queue.as_ref().map(|queue| quote!(.queue(#queue)));
    let priority = attrs.priority.map(|priority| quote!(.priority(#priority)));
    let max_attempts = attrs.max_attempts.map(|max| quote!(.max_attempts(#max)));
    let max_run_time = attrs
        .max_run_time
        .map(|secs| quote!(.max_run_time(::dj::__private::Duration::from_secs(#secs))));
    quote! {
        ::dj::__private::JobOptions::new() #queue #priority #max_attempts #max_run_time
    }
}
