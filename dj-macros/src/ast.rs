//! The model each macro works from: what the user wrote, typed, keeping the original syn nodes
//! for spans. Building it reads `#[job(...)]` and the shape of the input; what is allowed is
//! decided in `check.rs`.

use quote::ToTokens;
use syn::ext::IdentExt;
use syn::{
    Data, DeriveInput, Field, FnArg, GenericArgument, Generics, Ident, ItemFn, Pat, PathArguments,
    ReturnType, Token, Type,
};

use crate::attr::Attrs;
use crate::errors::Errors;

/// A type under `#[derive(Job)]`.
pub(crate) struct JobType<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) generics: &'a Generics,
    pub(crate) attrs: Attrs,
    pub(crate) shape: Shape<'a>,
}

pub(crate) enum Shape<'a> {
    /// A struct or an enum, with all of its fields (every variant's, for an enum).
    Data(Vec<&'a Field>),
    Union(&'a Token![union]),
}

impl<'a> JobType<'a> {
    pub(crate) fn from_syn(input: &'a DeriveInput, errors: &mut Errors) -> Self {
        let shape = match &input.data {
            Data::Struct(data) => Shape::Data(data.fields.iter().collect()),
            Data::Enum(data) => Shape::Data(
                data.variants
                    .iter()
                    .flat_map(|variant| &variant.fields)
                    .collect(),
            ),
            Data::Union(data) => Shape::Union(&data.union_token),
        };
        JobType {
            ident: &input.ident,
            generics: &input.generics,
            attrs: Attrs::from_attributes(&input.attrs, errors),
            shape,
        }
    }

    /// The stored name: `#[job(name = "..")]`, else the type's own name.
    pub(crate) fn name(&self) -> String {
        self.attrs.name_or(self.ident)
    }
}

/// A function under `#[dj::job]`, and the struct that will carry its arguments.
pub(crate) struct JobFn<'a> {
    pub(crate) item: &'a ItemFn,
    pub(crate) attrs: Attrs,
    /// The function's name in UpperCamelCase: `send_welcome` → `SendWelcome`.
    pub(crate) struct_ident: Ident,
    /// Whether the first parameter is a `&Context`, which is passed the worker's context.
    pub(crate) takes_context: bool,
    /// The other parameters: the struct's fields. Receivers, and parameters whose pattern is
    /// not a plain name, are left out (`check.rs` rejects them).
    pub(crate) args: Vec<Arg<'a>>,
    /// `()` if the return type is not supported (`check.rs` rejects it).
    pub(crate) output: Output<'a>,
}

pub(crate) struct Arg<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) ty: &'a Type,
}

pub(crate) enum Output<'a> {
    /// No return type, or `()`.
    Unit,
    /// `Result<(), E>`: holds `E`.
    Result(&'a Type),
}

impl<'a> JobFn<'a> {
    pub(crate) fn from_syn(attrs: Attrs, item: &'a ItemFn) -> Self {
        let mut params = item.sig.inputs.iter().filter_map(|input| match input {
            FnArg::Typed(param) => Some(param),
            FnArg::Receiver(_) => None,
        });
        let takes_context = item
            .sig
            .inputs
            .first()
            .is_some_and(|first| matches!(first, FnArg::Typed(param) if is_context(&param.ty)));
        if takes_context {
            params.next();
        }
        let args = params
            .filter_map(|param| {
                let ident = plain_name(&param.pat)?;
                Some(Arg {
                    ident,
                    ty: &param.ty,
                })
            })
            .collect();
        JobFn {
            item,
            attrs,
            struct_ident: Ident::new(&upper_camel_case(&item.sig.ident), item.sig.ident.span()),
            takes_context,
            args,
            output: output(&item.sig.output).unwrap_or(Output::Unit),
        }
    }

    /// The stored name: `#[dj::job(name = "..")]`, else the function's own name.
    pub(crate) fn name(&self) -> String {
        self.attrs.name_or(&self.item.sig.ident)
    }
}

/// `&Context`, `&dj::Context`, `&'a ::dj::Context`: a shared reference to a type named `Context`.
fn is_context(ty: &Type) -> bool {
    match ty {
        Type::Reference(reference) if reference.mutability.is_none() => {
            names_context(&reference.elem)
        }
        _ => false,
    }
}

/// Whether `ty` is a path ending in `Context`.
pub(crate) fn names_context(ty: &Type) -> bool {
    let Type::Path(path) = ty else {
        return false;
    };
    let last = path.path.segments.last();
    path.qself.is_none()
        && last.is_some_and(|last| last.ident == "Context" && last.arguments.is_empty())
}

/// The name a parameter's pattern binds, if it is a plain name (`user_id`, `mut user_id`).
pub(crate) fn plain_name(pat: &Pat) -> Option<&Ident> {
    match pat {
        Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => Some(&pat.ident),
        _ => None,
    }
}

/// `()` or `Result<(), E>`; anything else is an error that says what to write.
pub(crate) fn output(output: &ReturnType) -> syn::Result<Output<'_>> {
    let ty = match output {
        ReturnType::Default => return Ok(Output::Unit),
        ReturnType::Type(_, ty) => &**ty,
    };
    let unit = |ty: &Type| matches!(ty, Type::Tuple(tuple) if tuple.elems.is_empty());
    if unit(ty) {
        return Ok(Output::Unit);
    }
    let unsupported = |at: &dyn ToTokens| {
        syn::Error::new_spanned(
            at,
            "a `#[dj::job]` function returns `()` or `Result<(), E>` where `E` is its error \
             type; a value it returned would be lost",
        )
    };
    let last = match ty {
        Type::Path(path) => path.path.segments.last(),
        _ => None,
    };
    let Some(last) = last.filter(|last| last.ident == "Result") else {
        return Err(unsupported(ty));
    };
    let types: Vec<&Type> = match &last.arguments {
        PathArguments::AngleBracketed(args) => args
            .args
            .iter()
            .filter_map(|arg| match arg {
                GenericArgument::Type(ty) => Some(ty),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    match types.as_slice() {
        [ok, error] if unit(ok) => Ok(Output::Result(error)),
        [ok, _] => Err(unsupported(ok)),
        [ok] if unit(ok) => Err(syn::Error::new_spanned(
            &last.arguments,
            "`#[dj::job]` needs the error type spelled out, to name it as the job's \
             `Perform::Error`: write `Result<(), E>`, e.g. `Result<(), std::io::Error>`",
        )),
        _ => Err(unsupported(ty)),
    }
}

/// `send_welcome` → `SendWelcome`, `r#type` → `Type`; prefixed with `Job` where the result
/// would not be a type name (`__` → `Job`, `_2fa` → `Job2fa`, `self_` → `JobSelf`).
fn upper_camel_case(ident: &Ident) -> String {
    let camel: String = ident
        .unraw()
        .to_string()
        .split('_')
        .flat_map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars))
                .into_iter()
                .flatten()
        })
        .collect();
    if camel.is_empty() || camel.starts_with(|c: char| c.is_ascii_digit()) || camel == "Self" {
        format!("Job{camel}")
    } else {
        camel
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_names() {
        let camel = |name: &str| upper_camel_case(&syn::parse_str(name).unwrap());
        assert_eq!(camel("send_welcome"), "SendWelcome");
        assert_eq!(camel("fetch"), "Fetch");
        assert_eq!(camel("__private_thing2_x"), "PrivateThing2X");
        assert_eq!(camel("r#type"), "Type");
        assert_eq!(camel("AlreadyCamel"), "AlreadyCamel");
        assert_eq!(camel("__"), "Job");
        assert_eq!(camel("_2fa"), "Job2fa");
        assert_eq!(camel("self_"), "JobSelf");
    }
}
