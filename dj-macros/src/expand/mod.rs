//! Code generation, one file per macro. It reads only the model (`ast.rs`, `attr.rs`), and
//! names the runtime only through `::dj::__private` and dj's public traits.

pub(crate) mod derive;
pub(crate) mod job_fn;

use proc_macro2::TokenStream;
use quote::quote;
use syn::Ident;

use crate::attr::{Attrs, KeyFrom};

/// `impl ::dj::Job` and its registration: what both macros end with.
fn job_impl(ident: &Ident, name: &str, attrs: &Attrs) -> TokenStream {
    let aliases = &attrs.aliases;
    let options = options(attrs);
    let cron = cron(ident, attrs);
    let unique = attrs.unique.as_ref().map(|from| {
        let key = key(from);
        quote! {
            fn __unique_key(&self) -> ::core::option::Option<::std::string::String> {
                ::core::option::Option::Some(#key)
            }
        }
    });
    let concurrency_key = attrs
        .concurrency_key
        .as_ref()
        .or(attrs.sequence.as_ref())
        .or(attrs.fairness_key.as_ref());
    let concurrency = concurrency_key.map(|from| {
        let key = key(from);
        quote! {
            fn __concurrency_key(&self) -> ::core::option::Option<::std::string::String> {
                ::core::option::Option::Some(#key)
            }
        }
    });
    quote! {
        #[automatically_derived]
        impl ::dj::Job for #ident {
            const NAME: &'static str = #name;
            const ALIASES: &'static [&'static str] = &[#(#aliases),*];
            const OPTIONS: ::dj::__private::JobOptions = #options;
            #unique
            #concurrency
        }
        ::dj::__private::inventory::submit! {
            ::dj::__private::Registration::of::<#ident>()
        }
        #cron
    }
}

/// The schedule of a `#[job(cron = ..)]` type, registered beside the type.
fn cron(ident: &Ident, attrs: &Attrs) -> Option<TokenStream> {
    let expression = attrs.cron.as_ref()?;
    let tz = attrs.tz.as_deref().unwrap_or("UTC");
    let skip = attrs.skip_missed.unwrap_or(false);
    // Spanned at the expression, so that a type without `Default` is reported there.
    let of = quote::quote_spanned!(expression.span()=>
        ::dj::__private::CronRegistration::of::<#ident>);
    Some(quote! {
        ::dj::__private::inventory::submit! {
            #of(#expression, #tz, #skip)
        }
    })
}

/// A key from the payload or from fields (the fields' values as JSON; spanned at the string
/// that named them, so that a missing field is reported there).
fn key(from: &KeyFrom) -> TokenStream {
    match from {
        KeyFrom::Payload => quote!(::dj::__private::key_of(self)),
        KeyFrom::Fields(fields) => quote!(::dj::__private::key_of(&(#(&self.#fields,)*))),
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
    let replace = attrs
        .replace
        .then(|| quote!(.on_duplicate(::dj::OnDuplicate::Replace)));
    let until_done = attrs
        .unique_until_done
        .then(|| quote!(.unique_until_done()));
    // A fairness key bounds nothing: as many of its jobs may run at once as there are places.
    let unbounded = attrs.fairness_key.is_some().then_some(u32::MAX);
    let concurrency = attrs
        .concurrency
        .or(unbounded)
        .map(|limit| quote!(.concurrency(#limit)));
    let sequence = attrs.sequence.is_some().then(|| quote!(.sequence()));
    let transactional = attrs.transactional.then(|| quote!(.transactional()));
    let encrypted = attrs.encrypted.then(|| quote!(.encrypted()));
    let rate = attrs.rate.map(|(starts, ms)| quote!(.rate(#starts, #ms)));
    quote! {
        ::dj::__private::JobOptions::new() #queue #priority #max_attempts #max_run_time
            #replace #until_done #concurrency #sequence #transactional #encrypted #rate
    }
}
