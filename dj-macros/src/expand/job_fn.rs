//! `#[dj::job]`: the function, unchanged, and beside it a struct of its arguments that is a
//! job whose `perform` calls the function.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Item, Token};

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

/// The function unchanged, the struct of its arguments, and the struct's `Job` and `Perform`
/// (or `PerformAsync`) impls.
fn expand(job: &JobFn<'_>) -> TokenStream {
    let item = job.item;
    let args_struct = args_struct(job);
    let job_impl = super::job_impl(&job.struct_ident, &job.name(), &job.attrs);
    let perform_impl = match &item.sig.asyncness {
        None => perform_impl(job),
        Some(asyncness) => perform_async_impl(job, asyncness),
    };
    quote! {
        #item

        #args_struct

        const _: () = {
            #job_impl

            #perform_impl
        };
    }
}

/// `struct SendWelcome { pub user_id: i64, .. }`: one public field per stored parameter, with
/// the function's visibility.
fn args_struct(job: &JobFn<'_>) -> TokenStream {
    let vis = &job.item.vis;
    let function = &job.item.sig.ident;
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
    // A recurring job function takes no arguments (checked): its struct is built by default.
    let default = job
        .attrs
        .cron
        .is_some()
        .then(|| quote!(#[derive(::core::default::Default)]));
    quote! {
        #[doc = #doc]
        #default
        #[derive(::dj::__private::serde::Serialize, ::dj::__private::serde::Deserialize)]
        #[serde(crate = "::dj::__private::serde")]
        #vis struct #ident {
            #(#fields,)*
        }
    }
}

/// `impl Perform`: calls the function, and `Ok(())` after one that returns `()`.
fn perform_impl(job: &JobFn<'_>) -> TokenStream {
    let ident = &job.struct_ident;
    let (ctx, error, call) = (ctx_param(job), error_type(job), call(job));
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

/// `impl PerformAsync` for an `async fn`: the call's future, checked to be `Send`, awaited.
fn perform_async_impl(job: &JobFn<'_>, asyncness: &Token![async]) -> TokenStream {
    let ident = &job.struct_ident;
    let (ctx, error, call) = (ctx_param(job), error_type(job), call(job));
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

/// `perform`'s context parameter: `ctx` if the function takes it, else `_ctx`.
fn ctx_param(job: &JobFn<'_>) -> TokenStream {
    if job.takes_context {
        quote!(ctx)
    } else {
        quote!(_ctx)
    }
}

/// The job's error: the function's `E`, or `Infallible` for a function that returns `()`.
fn error_type(job: &JobFn<'_>) -> TokenStream {
    match job.output {
        Output::Unit => quote!(::core::convert::Infallible),
        Output::Result(error) => quote!(#error),
    }
}

/// `send_welcome(ctx, self.user_id.clone(), ..)`: the function called with the context (if
/// it takes one) and fresh clones of the stored arguments, since each attempt gets its own; a
/// type that is not `Clone` is reported at the parameter's type, once.
fn call(job: &JobFn<'_>) -> TokenStream {
    let function = &job.item.sig.ident;
    let passed_ctx = job.takes_context.then(|| quote!(ctx,));
    let args = job.args.iter().map(|arg| {
        let (mut name, ty) = (arg.ident.clone(), arg.ty);
        name.set_span(ty.span());
        quote_spanned!(ty.span()=> ::core::clone::Clone::clone(&self.#name))
    });
    quote!(#function(#passed_ctx #(#args),*))
}
