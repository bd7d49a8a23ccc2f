//! What each macro emits on bad input, beside the errors: as little as lets the rest of the
//! user's code compile, so that only the real mistakes show (as thiserror's `fallback.rs`).

use proc_macro2::TokenStream;
use quote::quote;

use crate::ast::JobType;

/// The errors, and an `impl Job` that has only the name, so that uses of the type
/// (`.delay()`, `T::NAME`) add no errors of their own. Nothing is registered.
pub(crate) fn derive(job: &JobType<'_>, error: &syn::Error) -> TokenStream {
    let error = error.to_compile_error();
    let ident = job.ident;
    let name = job.name();
    let (impl_generics, ty_generics, where_clause) = job.generics.split_for_impl();
    let predicates = where_clause
        .into_iter()
        .flat_map(|clause| &clause.predicates);
    // The supertraits become bounds, so that a type which cannot meet them (a union, a field
    // that borrows) adds no errors beside the real one. The `for<'__dj>` keeps rustc from
    // checking these bounds where the impl is written, which it does for bounds without
    // generic parameters.
    quote! {
        #error
        #[automatically_derived]
        impl #impl_generics ::dj::Job for #ident #ty_generics
        where
            #(#predicates,)*
            for<'__dj> Self: ::dj::Perform
                + ::dj::__private::serde::Serialize
                + ::dj::__private::serde::de::DeserializeOwned
                + ::core::marker::Send
                + ::core::marker::Sync
                + 'static,
        {
            const NAME: &'static str = #name;
        }
    }
}

/// The errors, and the function unchanged so that calls to it still compile.
pub(crate) fn job_fn(item: TokenStream, error: &syn::Error) -> TokenStream {
    let error = error.to_compile_error();
    quote! {
        #error
        #item
    }
}
