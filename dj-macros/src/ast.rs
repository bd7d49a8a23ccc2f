//! The model each macro works from: what the user wrote, typed, keeping the original syn nodes
//! for spans. Building it reads `#[job(...)]` and the shape of the input; what is allowed is
//! decided in `check.rs`.

use proc_macro2::TokenStream;
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
        self.attrs.name.as_ref().map_or_else(
            || self.ident.unraw().to_string(),
            |name| name.value(),
        )
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
    /// The other parameters: the struct's fields. Receivers are left out (`check.rs` rejects
    /// them), as are parameters whose pattern is not a plain name (rejected here).
    pub(crate) args: Vec<Arg<'a>>,
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
    pub(crate) fn from_syn(args: TokenStream, item: &'a ItemFn, errors: &mut Errors) -> Self {
        let attrs = Attrs::from_args(args, errors);
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
            .filter_map(|param| match &*param.pat {
                Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => Some(Arg {
                    ident: &pat.ident,
                    ty: &param.ty,
                }),
                pat => {
                    errors.at(
                        pat,
                        "`#[dj::job]` parameters become the fields of the job's struct, so each \
                         needs a plain name: write e.g. `user_id: i64`",
                    );
                    None
                }
            })
            .collect();
        JobFn {
            item,
            attrs,
            struct_ident: Ident::new(&upper_camel_case(&item.sig.ident), item.sig.ident.span()),
            takes_context,
            args,
            output: output(&item.sig.output, errors),
        }
    }

    /// The stored name: `#[dj::job(name = "..")]`, else the function's own name.
    pub(crate) fn name(&self) -> String {
        self.attrs.name.as_ref().map_or_else(
            || self.item.sig.ident.unraw().to_string(),
            |name| name.value(),
        )
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
    matches!(ty, Type::Path(path) if path.qself.is_none()
        && path.path.segments.last().is_some_and(|last| last.ident == "Context" && last.arguments.is_empty()))
}

/// `()` or `Result<(), E>`; anything else is reported.
fn output<'a>(output: &'a ReturnType, errors: &mut Errors) -> Output<'a> {
    let ty = match output {
        ReturnType::Default => return Output::Unit,
        ReturnType::Type(_, ty) => &**ty,
    };
    if matches!(ty, Type::Tuple(tuple) if tuple.elems.is_empty()) {
        return Output::Unit;
    }
    let message = "a `#[dj::job]` function returns `()` or `Result<(), E>` where `E` is its error \
                   type; a value it returns would be lost";
    let Type::Path(path) = ty else {
        errors.at(ty, message);
        return Output::Unit;
    };
    let Some(last) = path
        .path
        .segments
        .last()
        .filter(|last| last.ident == "Result")
    else {
        errors.at(ty, message);
        return Output::Unit;
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
        [Type::Tuple(ok), error] if ok.elems.is_empty() => Output::Result(error),
        [ok, _] => {
            errors.at(ok, message);
            Output::Unit
        }
        [ok] if matches!(ok, Type::Tuple(tuple) if tuple.elems.is_empty()) => {
            errors.at(
                &last.arguments,
                "`#[dj::job]` needs the error type spelled out, to name it as the job's \
                 `Perform::Error`: write `Result<(), E>`, e.g. `Result<(), std::io::Error>`",
            );
            Output::Unit
        }
        _ => {
            errors.at(ty, message);
            Output::Unit
        }
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
