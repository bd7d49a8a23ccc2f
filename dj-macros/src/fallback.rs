//! What each macro emits on bad input, beside the errors: as little as lets the rest of the
//! user's code compile, so that only the real mistakes show (as thiserror's `fallback.rs`).

use proc_macro2::TokenStream;
use quote::quote;

use crate::ast::{JobType, Shape};

/// The errors, and an `impl Job` that has only the name, so that uses of the type
/// (`.delay()`, `T::NAME`) add no errors of their own. Nothing is registered.
pub(crate) fn derive(job: &JobType<'_>, error: &syn::Error) -> TokenStream {
    let error = error.to_compile_error();
    if let Shape::Union(_) = job.shape {
        // A union cannot be stored at all: a stub impl would only add serde's complaints.
        return error;
    }
    let ident = job.ident;
    let name = job.name();
    let (impl_generics, ty_generics, where_clause) = job.generics.split_for_impl();
    // A generic type gets the supertraits as bounds, so they are not reported as missing.
    let bounds = (!job.generics.params.is_empty()).then(|| {
        let predicates = where_clause.into_iter().flat_map(|clause| &clause.predicates);
        quote! {
            where
                #(#predicates,)*
                Self: ::dj::Perform
                    + ::dj::__private::serde::Serialize
                    + ::dj::__private::serde::de::DeserializeOwned
                    + ::core::marker::Send
                    + ::core::marker::Sync
                    + 'static,
        }
    });
    let where_clause = bounds.map_or_else(|| quote!(#where_clause), |bounds| bounds);
    quote! {
        #error
        #[automatically_derived]
        impl #impl_generics ::dj::Job for #ident #ty_generics #where_clause {
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
