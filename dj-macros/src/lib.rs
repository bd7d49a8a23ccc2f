//! placeholder docs
mod ast;
mod attr;
mod check;
mod errors;
mod expand;
mod fallback;

use proc_macro::TokenStream;

#[proc_macro_derive(Job, attributes(job))]
pub fn derive_job(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    expand::derive::derive(&input).into()
}

#[proc_macro_attribute]
pub fn job(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::job_fn::job_fn(args.into(), item.into()).into()
}
