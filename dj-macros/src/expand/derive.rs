//! `#[derive(Job)]`: the `Job` impl and the registration, for a struct or an enum.

use proc_macro2::TokenStream;
use quote::quote;
use syn::DeriveInput;

use crate::ast::JobType;
use crate::errors::Errors;
use crate::{check, fallback};

pub(crate) fn derive(input: &DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    let job = JobType::from_syn(input, &mut errors);
    check::job_type(&job, &mut errors);
    match errors.finish() {
        Ok(()) => expand(&job),
        Err(error) => fallback::derive(&job, &error),
    }
}

fn expand(job: &JobType<'_>) -> TokenStream {
    let job_impl = super::job_impl(job.ident, &job.name(), &job.attrs);
    quote! {
        const _: () = {
            #job_impl
        };
    }
}
