//! `#[dj::job]`: the function, unchanged, and beside it a struct of its arguments that is a
//! job whose `perform` calls the function.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::Item;

use crate::ast::{JobFn, Output};
use crate::attr::Attrs;
use crate::errors::Errors;
use crate::{check, fallback};

pub(crate) fn job_fn(args: TokenStream, item: TokenStream) -> TokenStream {
    let item_fn = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(item_fn)) => item_fn,
        Ok(other) => return fallback::job_fn(item, &check::not_a_function(&other)),
        Err(error) => return fallback::job_fn(item, &error),
    };
    let mut errors = Errors::default();
    let attrs = Attrs::from_args(args, &mut errors);
    let job = JobFn::from_syn(attrs, &item_fn);
    check::job_fn(&job, &mut errors);
    match errors.finish() {
        Ok(()) => expand(&job),
        Err(error) => fallback::job_fn(item, &error),
    }
}

fn expand(job: &JobFn<'_>) -> TokenStream {
    let item = job.item;
    let vis = &item.vis;
    let function = &item.sig.ident;
    let ident = &job.struct_ident;
    let doc = format!(
        " The job form of [`{function}`]: its arguments, stored to call it later on a worker.\n\
         \n Enqueue with `{ident} {{ .. }}.delay().enqueue(&db)`."
    );
    // Spanned at the parameter, so that serde's complaint about a field points there.
    let fields = job.args.iter().map(|arg| {
        let (name, ty) = (arg.ident, arg.ty);
        let doc = format!(" The `{name}` argument of [`{function}`].");
        quote_spanned!(name.span()=> #[doc = #doc] pub #name: #ty)
    });
    let ctx = if job.takes_context {
        quote!(ctx)
    } else {
        quote!(_ctx)
    };
    let passed_ctx = job.takes_context.then(|| quote!(ctx,));
    // Each attempt gets fresh clones of the stored arguments; a type that is not `Clone` is
    // reported at the parameter's type, once.
    let args = job.args.iter().map(|arg| {
        let (mut name, ty) = (arg.ident.clone(), arg.ty);
        name.set_span(ty.span());
        quote_spanned!(ty.span()=> ::core::clone::Clone::clone(&self.#name))
    });
    let call = quote!(#function(#passed_ctx #(#args),*));
    let error = match job.output {
        Output::Unit => quote!(::core::convert::Infallible),
        Output::Result(error) => quote!(#error),
    };
    let perform_impl = match &job.item.sig.asyncness {
        None => {
            let body = match job.output {
                Output::Unit => quote!(#call; ::core::result::Result::Ok(())),
                Output::Result(_) => call,
            };
            quote! {
                #[automatically_derived]
                impl ::dj::Perform for #ident {
                    type Error = #error;
                    fn perform(
                        &self,
                        #ctx: &::dj::Context,
                    ) -> ::core::result::Result<(), Self::Error> {
                        #body
                    }
                }
            }
        }
        Some(asyncness) => {
            // The `Send` check is spanned at `async`, where a non-`Send` future is reported.
            let future = quote_spanned!(asyncness.span=> ::dj::__private::send_future(#call));
            let body = match job.output {
                Output::Unit => quote!(future.await; ::core::result::Result::Ok(())),
                Output::Result(_) => quote!(future.await),
            };
            quote! {
                #[automatically_derived]
                impl ::dj::PerformAsync for #ident {
                    type Error = #error;
                    fn perform(
                        &self,
                        #ctx: &::dj::Context,
                    ) -> impl ::core::future::Future<
                        Output = ::core::result::Result<(), Self::Error>,
                    > + ::core::marker::Send {
                        let future = #future;
                        async move { #body }
                    }
                }
            }
        }
    };
    let job_impl = super::job_impl(ident, &job.name(), &job.attrs);
    // A recurring job function takes no arguments (checked): its struct is built by default.
    let default = job
        .attrs
        .cron
        .is_some()
        .then(|| quote!(#[derive(::core::default::Default)]));
    quote! {
        #item

        #[doc = #doc]
        #default
        #[derive(::dj::__private::serde::Serialize, ::dj::__private::serde::Deserialize)]
        #[serde(crate = "::dj::__private::serde")]
        #vis struct #ident {
            #(#fields,)*
        }

        const _: () = {
            #job_impl

            #perform_impl
        };
    }
}
