//! What each macro accepts, checked on the model. Each mistake is reported at its own token,
//! and all of them in one pass.

use syn::{FnArg, GenericArgument, Generics, Item, PathArguments, Type};

use crate::ast::{names_context, output, plain_name, JobFn, JobType, Shape};
use crate::attr::Attrs;
use crate::errors::Errors;

pub(crate) fn job_type(job: &JobType<'_>, errors: &mut Errors) {
    generics(
        job.generics,
        "`#[derive(Job)]` does not support generic types; a stored job must name one concrete \
         type, since a worker finds it by name alone: remove the generic parameters, or give \
         each use its own struct, e.g. `struct ResizeAvatar { image: Image<Png> }`",
        errors,
    );
    match &job.shape {
        Shape::Union(union_token) => errors.at(
            union_token,
            "`#[derive(Job)]` does not support unions: serde cannot store them; use a struct \
             or an enum",
        ),
        Shape::Data(fields) => {
            for field in fields {
                for borrow in borrows(&field.ty) {
                    if let Borrow::Reference(reference) = borrow {
                        let message = format!(
                            "a job's fields must own their data: a job is stored and loaded \
                             later, when nothing it borrowed is still there; write {}",
                            owned_form(&reference.elem)
                        );
                        errors.at(reference.and_token, message);
                    }
                }
            }
        }
    }
    aliases(&job.attrs, &job.name(), errors);
    crate::attr::requires(&job.attrs, errors, job.ident.span());
}

pub(crate) fn job_fn(job: &JobFn<'_>, errors: &mut Errors) {
    let sig = &job.item.sig;
    if let Some(constness) = &sig.constness {
        errors.at(
            constness,
            "`#[dj::job]` functions cannot be `const`; remove `const`",
        );
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.at(
            unsafety,
            "`#[dj::job]` functions cannot be `unsafe`: a worker calls them with no one to \
             uphold their safety contract; remove `unsafe` and keep the unsafe block inside",
        );
    }
    if let Some(abi) = &sig.abi {
        errors.at(
            abi,
            "`#[dj::job]` functions cannot be `extern`; remove the ABI and write a plain `fn`",
        );
    }
    generics(
        &sig.generics,
        "`#[dj::job]` functions cannot be generic: the job's struct stores one concrete type \
         for each parameter, and a worker finds it by name alone; remove the generic parameters",
        errors,
    );
    params(job, errors);
    if let Some(variadic) = &sig.variadic {
        errors.at(
            variadic.dots,
            "`#[dj::job]` functions cannot be variadic; take a `Vec` instead",
        );
    }
    if let Err(error) = output(&sig.output) {
        errors.push(error);
    }
    if let (Some(_), Some(first)) = (&job.attrs.cron, job.args.first()) {
        errors.at(
            first.ident,
            "a `#[dj::job(cron = ..)]` function takes no arguments: each fire time enqueues it \
             with nothing to pass; remove the parameters, or give a schedule its arguments at \
             run time with `dj::Schedule::new(name, expression, &job)`",
        );
    }
    crate::attr::requires(&job.attrs, errors, job.item.sig.ident.span());
    aliases(&job.attrs, &job.name(), errors);
}

/// Each parameter becomes a field of the job's struct (except a leading context): not
/// `self`, a plain name, and a type that owns its data.
fn params(job: &JobFn<'_>, errors: &mut Errors) {
    for (position, input) in job.item.sig.inputs.iter().enumerate() {
        let param = match input {
            FnArg::Receiver(receiver) => {
                errors.at(
                    receiver.self_token,
                    "`#[dj::job]` goes on a free function, not a method: a worker has no `self` \
                     to call it on; move the function out of the `impl` block and take what \
                     it needs as parameters",
                );
                continue;
            }
            FnArg::Typed(param) => param,
        };
        if position == 0 && job.takes_context {
            continue;
        }
        if plain_name(&param.pat).is_none() {
            errors.at(
                &param.pat,
                "`#[dj::job]` parameters become the fields of the job's struct, so each needs a \
                 plain name: write e.g. `user_id: i64`",
            );
        }
        param_borrows(&param.ty, errors);
    }
}

/// `#[dj::job]` on something other than a function.
pub(crate) fn not_a_function(item: &Item) -> syn::Error {
    let derive = "`#[dj::job]` goes on a function; for a struct or an enum, use \
                  `#[derive(dj::Job)]` (and put its `#[job(...)]` below the derive)";
    let other = "`#[dj::job]` goes on a free function, e.g. \
                 `#[dj::job] fn send_welcome(user_id: i64) { .. }`";
    match item {
        Item::Struct(item) => syn::Error::new_spanned(item.struct_token, derive),
        Item::Enum(item) => syn::Error::new_spanned(item.enum_token, derive),
        Item::Union(item) => syn::Error::new_spanned(item.union_token, derive),
        item => {
            let first = quote::ToTokens::to_token_stream(item).into_iter().next();
            syn::Error::new_spanned(first, other)
        }
    }
}

/// Generic parameters, or a `where` clause without them.
fn generics(generics: &Generics, message: &str, errors: &mut Errors) {
    if !generics.params.is_empty() {
        errors.at(generics, message);
    } else if let Some(where_clause) = &generics.where_clause {
        errors.at(where_clause, message);
    }
}

/// A parameter's type: stored in the job's struct, so it cannot borrow or be `impl Trait`.
fn param_borrows(ty: &Type, errors: &mut Errors) {
    for borrow in borrows(ty) {
        match borrow {
            Borrow::Reference(reference) => {
                let outermost = matches!(ty, Type::Reference(top) if std::ptr::eq(top, reference));
                let message = if names_context(&reference.elem) {
                    "the context parameter is taken as `&dj::Context` and comes first: write \
                     `fn send_welcome(ctx: &dj::Context, ..)`"
                        .to_owned()
                } else if outermost {
                    format!(
                        "`#[dj::job]` parameters cannot be references: the arguments are \
                         stored and loaded later, when nothing they borrowed is still there; \
                         take {}",
                        owned_form(&reference.elem)
                    )
                } else {
                    format!(
                        "`#[dj::job]` parameters cannot hold references: the arguments are \
                         stored and loaded later, when nothing they borrowed is still there; \
                         use {}",
                        owned_form(&reference.elem)
                    )
                };
                errors.at(reference.and_token, message);
            }
            Borrow::ImplTrait(impl_trait) => errors.at(
                impl_trait.impl_token,
                "`#[dj::job]` parameters cannot be `impl Trait`: the job's struct stores one \
                 concrete type for each; write the type itself",
            ),
        }
    }
}

/// Where a type borrows (`&T`) or hides its type (`impl Trait`), outermost first.
enum Borrow<'a> {
    Reference(&'a syn::TypeReference),
    ImplTrait(&'a syn::TypeImplTrait),
}

fn borrows(ty: &Type) -> Vec<Borrow<'_>> {
    let mut found = Vec::new();
    walk(ty, &mut found);
    found
}

fn walk<'a>(ty: &'a Type, found: &mut Vec<Borrow<'a>>) {
    match ty {
        Type::Reference(reference) => found.push(Borrow::Reference(reference)),
        Type::ImplTrait(impl_trait) => found.push(Borrow::ImplTrait(impl_trait)),
        Type::Array(array) => walk(&array.elem, found),
        Type::Slice(slice) => walk(&slice.elem, found),
        Type::Paren(paren) => walk(&paren.elem, found),
        Type::Group(group) => walk(&group.elem, found),
        Type::Ptr(ptr) => walk(&ptr.elem, found),
        Type::Tuple(tuple) => tuple.elems.iter().for_each(|elem| walk(elem, found)),
        Type::Path(path) => {
            for segment in &path.path.segments {
                if let PathArguments::AngleBracketed(args) = &segment.arguments {
                    for arg in &args.args {
                        if let GenericArgument::Type(ty) = arg {
                            walk(ty, found);
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

/// What to write instead of `&elem`: "`String` instead of `&str`" and the like.
fn owned_form(elem: &Type) -> &'static str {
    let last = match elem {
        Type::Slice(_) => return "`Vec<T>` instead of `&[T]`",
        Type::Path(path) => path.path.segments.last().map(|last| last.ident.to_string()),
        _ => None,
    };
    match last.as_deref() {
        Some("str") => "`String` instead of `&str`",
        Some("Path") => "`PathBuf` instead of `&Path`",
        Some("OsStr") => "`OsString` instead of `&OsStr`",
        Some("CStr") => "`CString` instead of `&CStr`",
        _ => "an owned type instead, e.g. `T` instead of `&T`",
    }
}

/// Each alias names an older name: not the job's own name, and each listed once.
fn aliases(attrs: &Attrs, name: &str, errors: &mut Errors) {
    let mut seen = Vec::new();
    for alias in &attrs.aliases {
        let value = alias.value();
        if value == name {
            errors.at(
                alias,
                format!(
                    "`{value}` is this job's own name; `aliases` lists older names that stored \
                     rows may still carry: remove it"
                ),
            );
        } else if seen.contains(&value) {
            errors.at(alias, format!("duplicate alias `{value}`; list each once"));
        }
        seen.push(value);
    }
}
