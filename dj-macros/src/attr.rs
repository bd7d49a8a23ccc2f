//! `#[job(...)]`: the settings both macros take, parsed into [`Attrs`].

use std::borrow::Cow;
use std::time::Duration;

use proc_macro2::TokenStream;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Attribute, Expr, ExprLit, Ident, Lit, LitInt, LitStr, Meta, Token, UnOp};

use crate::errors::Errors;
use crate::rules::duration::parse_duration;
use crate::rules::queue_name::{self, QueueNameError, MAX_QUEUE_NAME};
use crate::rules::rate::parse_rate;

/// The settings of one job type, as written. `None` means "not given".
#[derive(Default)]
pub(crate) struct Attrs {
    /// The stored name; the literal is kept for spans.
    pub(crate) name: Option<LitStr>,
    pub(crate) aliases: Vec<LitStr>,
    pub(crate) queue: Option<String>,
    pub(crate) priority: Option<i32>,
    pub(crate) max_attempts: Option<u32>,
    /// Whole seconds, more than zero.
    pub(crate) max_run_time: Option<u64>,
    pub(crate) unique: Option<KeyFrom>,
    /// `on_duplicate = "replace"`.
    pub(crate) replace: bool,
    /// `unique_until = "done"`.
    pub(crate) unique_until_done: bool,
    pub(crate) concurrency_key: Option<KeyFrom>,
    pub(crate) concurrency: Option<u32>,
    /// `sequence = "account_id"`: a concurrency key whose jobs run one at a time, in order.
    pub(crate) sequence: Option<KeyFrom>,
    /// `fairness_key = "tenant_id"`: a key its jobs are claimed round-robin by, with no bound
    /// on how many run at once.
    pub(crate) fairness_key: Option<KeyFrom>,
    /// `rate = "20/s"`: starts, and the period in milliseconds.
    pub(crate) rate: Option<(u32, u64)>,
    /// `transactional = true`: the job completes its row in its own transaction.
    pub(crate) transactional: bool,
    /// `encrypted = true`: the job's fields are stored encrypted.
    pub(crate) encrypted: bool,
    /// `cron = "0 */5 * * * *"`, with its span.
    pub(crate) cron: Option<LitStr>,
    /// `tz = "Europe/Paris"`.
    pub(crate) tz: Option<String>,
    /// `missed = "skip"`.
    pub(crate) skip_missed: Option<bool>,
}

/// What a unique or concurrency key is built from.
pub(crate) enum KeyFrom {
    /// `unique = true`: the whole stored payload.
    Payload,
    /// `unique = "customer_id, region"`: these fields, each with the span of the string.
    Fields(Vec<Ident>),
}

/// Every key, with the example that messages suggest.
const KEYS: [(&str, &str); 19] = [
    ("name", r#"name = "SendWelcome""#),
    ("aliases", r#"aliases = ["OldName"]"#),
    ("queue", r#"queue = "mail""#),
    ("priority", "priority = 10"),
    ("max_attempts", "max_attempts = 5"),
    ("max_run_time", r#"max_run_time = "30s""#),
    ("unique", r#"unique = "customer_id""#),
    ("on_duplicate", r#"on_duplicate = "replace""#),
    ("unique_until", r#"unique_until = "done""#),
    ("concurrency_key", r#"concurrency_key = "customer_id""#),
    ("concurrency", "concurrency = 1"),
    ("sequence", r#"sequence = "account_id""#),
    ("fairness_key", r#"fairness_key = "tenant_id""#),
    ("rate", r#"rate = "20/s""#),
    ("transactional", "transactional = true"),
    ("encrypted", "encrypted = true"),
    ("cron", r#"cron = "0 */5 * * * *""#),
    ("tz", r#"tz = "Europe/Paris""#),
    ("missed", r#"missed = "skip""#),
];

/// Names people reach for from other job libraries, and the key they mean.
const RENAMED: [(&str, &str); 16] = [
    ("attempts", "max_attempts"),
    ("retries", "max_attempts"),
    ("max_retries", "max_attempts"),
    ("timeout", "max_run_time"),
    ("run_time", "max_run_time"),
    ("runtime", "max_run_time"),
    ("max_runtime", "max_run_time"),
    ("queue_name", "queue"),
    ("queues", "queue"),
    ("alias", "aliases"),
    ("rename", "name"),
    ("pri", "priority"),
    ("rate_limit", "rate"),
    ("throttle", "rate"),
    ("tenant", "fairness_key"),
    ("fair_key", "fairness_key"),
];

impl Attrs {
    /// From a type's `#[job(...)]` attributes, any number of them, merged.
    pub(crate) fn from_attributes(attrs: &[Attribute], errors: &mut Errors) -> Self {
        let mut settings = Settings::default();
        for attr in attrs.iter().filter(|attr| attr.path().is_ident("job")) {
            match &attr.meta {
                Meta::Path(_) => {}
                Meta::List(list) => settings.parse(list.tokens.clone(), errors),
                Meta::NameValue(meta) => errors.at(
                    &meta.value,
                    "`#[job]` takes a list of settings: write `#[job(queue = \"mail\")]`",
                ),
            }
        }
        settings.attrs
    }

    /// The stored name: `name = ".."` if given, else the Rust name of the type or function.
    pub(crate) fn name_or(&self, ident: &Ident) -> String {
        self.name
            .as_ref()
            .map_or_else(|| ident.unraw().to_string(), LitStr::value)
    }

    /// From the arguments of `#[dj::job(...)]`.
    pub(crate) fn from_args(args: TokenStream, errors: &mut Errors) -> Self {
        let mut settings = Settings::default();
        settings.parse(args, errors);
        settings.attrs
    }
}

/// The parser's state: what is set so far, and which keys were seen.
#[derive(Default)]
struct Settings {
    attrs: Attrs,
    seen: Vec<String>,
}

impl Settings {
    // Every accepted form; both macros take the same keys, e.g. `#[dj::job(queue = "mail")]`.
    //
    //   #[job(name = "SendWelcome")]          the stored name (default: the type's or fn's name)
    //   #[job(aliases = ["Old", "Older"])]    older stored names, still loaded as this type
    //   #[job(queue = "mail")]                the default queue
    //   #[job(priority = 10)]                 the default priority, an i32, may be negative
    //   #[job(max_attempts = 5)]              runs in all before failing for good, at least 1
    //   #[job(max_run_time = "30s")]          dj's duration grammar (humantime's: "15m", "4h",
    //   #[job(max_run_time = "90")]           "1d", "1h30m"; a bare number is seconds), in
    //   #[job(max_run_time = 90)]             whole seconds, not 0, at most i32::MAX seconds
    //   #[job(queue = "mail", priority = 1)]  several keys in one attribute,
    //   #[job(queue = "mail")] #[job(priority = 1)]   or in several, merged
    //   #[job]  #[job()]                      nothing set
    //
    // Each key at most once. Every mistake is collected, so one compile reports them all.
    fn parse(&mut self, tokens: TokenStream, errors: &mut Errors) {
        let parser = |input: ParseStream<'_>| {
            while !input.is_empty() {
                if !input.peek(Ident::peek_any) {
                    let message = "expected a `key = value` setting, e.g. `queue = \"mail\"`";
                    return Err(input.error(message));
                }
                let key = input.call(Ident::parse_any)?;
                if input.peek(Token![=]) {
                    input.parse::<Token![=]>()?;
                    let value: Expr = input.parse()?;
                    self.set(&key, &value, errors);
                } else {
                    if input.peek(syn::token::Paren) {
                        input.parse::<proc_macro2::Group>()?; // `queue("mail")`: reported below
                    }
                    missing_value(&key, errors);
                }
                if !input.is_empty() {
                    input.parse::<Token![,]>()?;
                }
            }
            Ok(())
        };
        if let Err(error) = parser.parse2(tokens) {
            errors.push(error);
        }
    }

    fn set(&mut self, key: &Ident, value: &Expr, errors: &mut Errors) {
        let name = key.unraw().to_string();
        if example_of(&name).is_none() {
            return errors.push(unknown_key(key));
        }
        if self.seen.contains(&name) {
            let message = format!(
                "duplicate `#[job]` key `{name}`; give each key once: remove this `{name}` \
                 or the first"
            );
            return errors.at(key, message);
        }
        self.seen.push(name.clone());
        let value = strip_groups(value);
        let attrs = &mut self.attrs;
        let result = match name.as_str() {
            "name" => stored_name(value, "`name`", r#"name = "SendWelcome""#)
                .map(|lit| attrs.name = Some(lit)),
            "aliases" => {
                attrs.aliases = aliases(value, errors);
                Ok(())
            }
            "queue" => queue(value).map(|queue| attrs.queue = Some(queue)),
            "priority" => priority(value).map(|priority| attrs.priority = Some(priority)),
            "max_attempts" => max_attempts(value).map(|max| attrs.max_attempts = Some(max)),
            "max_run_time" => max_run_time(value).map(|secs| attrs.max_run_time = Some(secs)),
            "unique" => key_from(value, "unique", true).map(|key| attrs.unique = Some(key)),
            "on_duplicate" => one_of(value, "on_duplicate", &["skip", "replace"])
                .map(|policy| attrs.replace = policy == "replace"),
            "unique_until" => one_of(value, "unique_until", &["start", "done"])
                .map(|until| attrs.unique_until_done = until == "done"),
            "concurrency_key" => key_from(value, "concurrency_key", false)
                .map(|key| attrs.concurrency_key = Some(key)),
            "concurrency" => concurrency(value).map(|limit| attrs.concurrency = Some(limit)),
            "sequence" => key_from(value, "sequence", false).map(|key| attrs.sequence = Some(key)),
            "fairness_key" => {
                key_from(value, "fairness_key", false).map(|key| attrs.fairness_key = Some(key))
            }
            "rate" => rate(value).map(|rate| attrs.rate = Some(rate)),
            "transactional" => flag(value, "transactional").map(|on| attrs.transactional = on),
            "encrypted" => flag(value, "encrypted").map(|on| attrs.encrypted = on),
            "cron" => cron(value).map(|lit| attrs.cron = Some(lit)),
            "tz" => tz(value).map(|tz| attrs.tz = Some(tz)),
            "missed" => one_of(value, "missed", &["once", "skip"])
                .map(|missed| attrs.skip_missed = Some(missed == "skip")),
            _ => unreachable!("every key in KEYS is handled"),
        };
        if let Err(error) = result {
            errors.push(error);
        }
    }
}

/// Settings that only mean something beside another.
pub(crate) fn requires(attrs: &Attrs, errors: &mut Errors, span: proc_macro2::Span) {
    let mut need = |set: bool, key: &str, needs: &str, example: &str| {
        if set {
            errors.push(syn::Error::new(
                span,
                format!("`{key}` needs `{needs}` beside it, e.g. `#[job({example})]`"),
            ));
        }
    };
    let no_unique = attrs.unique.is_none();
    need(
        no_unique && attrs.replace,
        "on_duplicate",
        "unique",
        r#"unique = "customer_id", on_duplicate = "replace""#,
    );
    need(
        no_unique && attrs.unique_until_done,
        "unique_until",
        "unique",
        r#"unique = "customer_id", unique_until = "done""#,
    );
    let no_cron = attrs.cron.is_none();
    need(
        no_cron && attrs.tz.is_some(),
        "tz",
        "cron",
        r#"cron = "0 30 2 * * *", tz = "Europe/Paris""#,
    );
    need(
        no_cron && attrs.skip_missed.is_some(),
        "missed",
        "cron",
        r#"cron = "0 30 2 * * *", missed = "skip""#,
    );
    need(
        attrs.concurrency_key.is_none() && attrs.concurrency.is_some(),
        "concurrency",
        "concurrency_key",
        r#"concurrency_key = "customer_id", concurrency = 1"#,
    );
    if attrs.sequence.is_some() && attrs.concurrency_key.is_some() {
        errors.push(syn::Error::new(
            span,
            "a job has `sequence` or `concurrency_key`, not both: a sequence is a concurrency \
             key whose jobs run one at a time in enqueue order; keep one",
        ));
    }
    if attrs.fairness_key.is_some() && (attrs.sequence.is_some() || attrs.concurrency_key.is_some())
    {
        errors.push(syn::Error::new(
            span,
            "a job has one key: `fairness_key`, `concurrency_key` or `sequence`; jobs of every \
             key are claimed round-robin between keys, so write `concurrency_key` (with \
             `concurrency = N`) for a key that also limits how many run at once",
        ));
    }
}

/// `unique = "customer_id, region"` (fields), or `unique = true` (the whole payload; only
/// where `payload` is allowed).
fn key_from(expr: &Expr, key: &str, payload: bool) -> syn::Result<KeyFrom> {
    let example = format!(r#"`{key} = "customer_id"` (a key from these fields)"#);
    let example = if payload {
        format!("{example} or `{key} = true` (the whole payload)")
    } else {
        example
    };
    if let Expr::Lit(ExprLit {
        lit: Lit::Bool(flag),
        ..
    }) = expr
    {
        return match (flag.value, payload) {
            (true, true) => Ok(KeyFrom::Payload),
            _ => Err(syn::Error::new(
                flag.span,
                format!("`{key}` takes field names: write {example}"),
            )),
        };
    }
    let Some(lit) = string(expr) else {
        return Err(syn::Error::new_spanned(
            expr,
            format!("`{key}` takes field names in a string: write {example}"),
        ));
    };
    let mut fields = Vec::new();
    for name in lit.value().split(',').map(str::trim) {
        match syn::parse_str::<Ident>(name) {
            Ok(mut ident) => {
                ident.set_span(lit.span());
                fields.push(ident);
            }
            Err(_) => {
                return Err(syn::Error::new(
                    lit.span(),
                    format!("`{name}` is not a field name; write {example}"),
                ))
            }
        }
    }
    Ok(KeyFrom::Fields(fields))
}

/// `cron = "0 */5 * * * *"`: five fields, or six with seconds first. The expression itself is
/// read by the runtime's cron crate when a worker starts (its error names the schedule).
fn cron(expr: &Expr) -> syn::Result<LitStr> {
    let example =
        r#"`cron = "0 */5 * * * *"` (six fields, seconds first) or `cron = "*/5 * * * *"`"#;
    match string(expr) {
        Some(lit) if matches!(lit.value().split_whitespace().count(), 5 | 6) => Ok(lit.clone()),
        Some(lit) => Err(syn::Error::new(
            lit.span(),
            format!(
                "`cron` takes five fields (minute hour day-of-month month day-of-week) or six \
                 with seconds first; write e.g. {example}"
            ),
        )),
        None => Err(syn::Error::new_spanned(
            expr,
            format!("`cron` takes a string, e.g. {example}"),
        )),
    }
}

/// `tz = "Europe/Paris"`: an IANA zone name (checked by the runtime when a worker starts).
fn tz(expr: &Expr) -> syn::Result<String> {
    match string(expr).map(LitStr::value) {
        Some(tz) if !tz.is_empty() && !tz.contains(char::is_whitespace) => Ok(tz),
        _ => Err(syn::Error::new_spanned(
            expr,
            r#"`tz` takes an IANA time zone name, e.g. `tz = "Europe/Paris"` or `tz = "UTC"`"#,
        )),
    }
}

/// `transactional = true` (or `false`).
fn flag(expr: &Expr, key: &str) -> syn::Result<bool> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(flag),
            ..
        }) => Ok(flag.value),
        _ => Err(syn::Error::new_spanned(
            expr,
            format!("`{key}` is `true` or `false`: write `{key} = true`"),
        )),
    }
}

/// A string that is one of `allowed`.
fn one_of(expr: &Expr, key: &str, allowed: &[&str]) -> syn::Result<String> {
    let choices = allowed
        .iter()
        .map(|a| format!("`{key} = \"{a}\"`"))
        .collect::<Vec<_>>()
        .join(" or ");
    match string(expr).map(LitStr::value) {
        Some(value) if allowed.contains(&value.as_str()) => Ok(value),
        _ => Err(syn::Error::new_spanned(
            expr,
            format!("`{key}` is one of: write {choices}"),
        )),
    }
}

/// `rate = "20/s"`: at most so many starts of one key per period (dj's rate grammar).
fn rate(expr: &Expr) -> syn::Result<(u32, u64)> {
    let Some(lit) = string(expr) else {
        return Err(syn::Error::new_spanned(
            expr,
            "`rate` takes a string STARTS/PERIOD, e.g. `rate = \"20/s\"`, `rate = \"100/min\"` \
             or `rate = \"5/10s\"`",
        ));
    };
    match parse_rate(&lit.value()) {
        Ok((starts, period)) if period.subsec_nanos() % 1_000_000 == 0 => {
            Ok((starts, period.as_millis() as u64))
        }
        Ok(_) => Err(syn::Error::new_spanned(
            lit,
            "`rate` counts whole milliseconds; write the period in `ms`, e.g. `rate = \"5/250ms\"`",
        )),
        Err(e) => Err(syn::Error::new_spanned(lit, format!("`rate`: {e}"))),
    }
}

/// `concurrency = 1`: how many jobs with one key may run at once, at least 1.
fn concurrency(expr: &Expr) -> syn::Result<u32> {
    let text = integer_setting(expr, "concurrency", "a positive integer", "concurrency = 1")?;
    match text.parse::<u32>() {
        Ok(0) | Err(_) => Err(syn::Error::new_spanned(
            expr,
            format!(
                "`concurrency` takes a whole number from 1 to {}: how many jobs with one key \
                 may run at once, e.g. `concurrency = 1`",
                i32::MAX
            ),
        )),
        Ok(limit) if limit > i32::MAX as u32 => Err(syn::Error::new_spanned(
            expr,
            format!("`concurrency` can be at most {}", i32::MAX),
        )),
        Ok(limit) => Ok(limit),
    }
}

/// `queue` alone, or `queue("mail")`.
fn missing_value(key: &Ident, errors: &mut Errors) {
    let name = key.unraw().to_string();
    match example_of(&name) {
        Some(example) => errors.at(
            key,
            format!("`#[job]` key `{name}` needs a value, e.g. `{example}`"),
        ),
        None => errors.push(unknown_key(key)),
    }
}

fn example_of(key: &str) -> Option<&'static str> {
    KEYS.iter()
        .find(|(name, _)| *name == key)
        .map(|(_, example)| *example)
}

fn unknown_key(key: &Ident) -> syn::Error {
    let name = key.unraw().to_string();
    let expected: Vec<&str> = KEYS.iter().map(|(name, _)| *name).collect();
    let mut message = format!(
        "unknown `#[job]` key `{name}`; expected one of: {}",
        expected.join(", ")
    );
    if let Some(meant) = meant(&name) {
        message.push_str(&format!("; did you mean `{meant}`?"));
    }
    syn::Error::new(key.span(), message)
}

/// The key a near-miss most likely means: a known rename, or a typo of at most two edits.
fn meant(written: &str) -> Option<&'static str> {
    let lower = written.to_ascii_lowercase();
    if let Some((_, key)) = RENAMED.iter().find(|(from, _)| *from == lower) {
        return Some(key);
    }
    KEYS.iter()
        .map(|(key, _)| (edit_distance(&lower, key), *key))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, key)| key)
}

/// Levenshtein distance, for typo hints.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substituted = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substituted.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// Looks through the invisible groups that `macro_rules!` wraps around `$value:expr`.
fn strip_groups(mut expr: &Expr) -> &Expr {
    while let Expr::Group(group) = expr {
        expr = &group.expr;
    }
    expr
}

fn string(expr: &Expr) -> Option<&LitStr> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => Some(lit),
        _ => None,
    }
}

/// An integer literal, perhaps negated, as decimal text: `5`, `-5`.
fn integer(expr: &Expr) -> Option<String> {
    let digits = |lit: &LitInt| lit.base10_digits().to_owned();
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) => Some(digits(lit)),
        Expr::Unary(unary) if matches!(unary.op, UnOp::Neg(_)) => match strip_groups(&unary.expr) {
            Expr::Lit(ExprLit {
                lit: Lit::Int(lit), ..
            }) => Some(format!("-{}", digits(lit))),
            _ => None,
        },
        _ => None,
    }
}

/// `name = ".."` and each alias (`what` says which): stored in every row and matched exactly,
/// so not empty and without whitespace or control characters.
fn stored_name(expr: &Expr, what: &str, example: &str) -> syn::Result<LitStr> {
    let Some(lit) = string(expr) else {
        let message = format!("{what} must be a string, e.g. `{example}`");
        return Err(syn::Error::new_spanned(expr, message));
    };
    let value = lit.value();
    if value.is_empty() {
        let message = format!("{what} cannot be empty; write the name to store, e.g. `{example}`");
        return Err(syn::Error::new(lit.span(), message));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        let message = format!(
            "{what} cannot contain whitespace or control characters: it is stored in every \
             row and matched exactly; write e.g. `{example}`"
        );
        return Err(syn::Error::new(lit.span(), message));
    }
    Ok(lit.clone())
}

/// `aliases = ["Old", "Older"]`: each element is checked on its own, so all bad ones show.
fn aliases(expr: &Expr, errors: &mut Errors) -> Vec<LitStr> {
    let example = r#"aliases = ["OldName"]"#;
    let Expr::Array(array) = expr else {
        errors.at(
            expr,
            format!("`aliases` takes a list of strings, e.g. `{example}`"),
        );
        return Vec::new();
    };
    let mut aliases = Vec::new();
    for element in &array.elems {
        match stored_name(strip_groups(element), "an alias", example) {
            Ok(alias) => aliases.push(alias),
            Err(error) => errors.push(error),
        }
    }
    aliases
}

/// `queue = "mail"`: the runtime's rule (`rules/queue_name.rs`): 1 to 255 bytes, no control
/// characters, and what a worker's `--queues mail,feeds` can name (no commas, no spaces at
/// either end).
fn queue(expr: &Expr) -> syn::Result<String> {
    let example = r#"queue = "mail""#;
    let Some(lit) = string(expr) else {
        let message = match integer(expr) {
            Some(number) => format!("`queue` takes a string: write `queue = \"{number}\"`"),
            None => format!("`queue` takes a string, e.g. `{example}`"),
        };
        return Err(syn::Error::new_spanned(expr, message));
    };
    let value = lit.value();
    let problem: Cow<'_, str> = match queue_name::check(&value) {
        Ok(()) => return Ok(value),
        Err(QueueNameError::Empty) => {
            "a queue name cannot be empty; remove `queue` to use no queue, or write".into()
        }
        Err(QueueNameError::TooLong) => {
            format!("a queue name is at most {MAX_QUEUE_NAME} bytes; write").into()
        }
        Err(QueueNameError::ControlCharacter) => {
            "a queue name cannot contain control characters; write".into()
        }
        Err(QueueNameError::CommaOrOuterSpace) => {
            "a queue name cannot contain commas or start or end with spaces: workers take a \
             comma-separated list (`--queues mail,feeds`); write"
                .into()
        }
    };
    Err(syn::Error::new(
        lit.span(),
        format!("{problem} e.g. `{example}`"),
    ))
}

/// The integer in `expr`, or else a message that says how to write one. A quoted number gets
/// "not a string: write `key = 5`".
fn integer_setting(expr: &Expr, key: &str, takes: &str, example: &str) -> syn::Result<String> {
    integer(expr).ok_or_else(|| {
        let quoted = string(expr)
            .map(LitStr::value)
            .filter(|text| text.trim().parse::<i64>().is_ok());
        let message = match quoted {
            Some(text) => format!(
                "`{key}` takes {takes}, not a string: write `{key} = {}`",
                text.trim()
            ),
            None => format!("`{key}` takes {takes}, e.g. `{example}`"),
        };
        syn::Error::new_spanned(expr, message)
    })
}

/// `priority = 10`, `priority = -5`: lower runs first.
fn priority(expr: &Expr) -> syn::Result<i32> {
    let text = integer_setting(
        expr,
        "priority",
        "an integer (lower runs first)",
        "priority = 10",
    )?;
    text.parse().map_err(|_| {
        let message = format!(
            "`priority` must fit in an i32 ({} to {}); write e.g. `priority = 10`",
            i32::MIN,
            i32::MAX
        );
        syn::Error::new_spanned(expr, message)
    })
}

/// `max_attempts = 5`: every run counts, the first included, so at least 1.
fn max_attempts(expr: &Expr) -> syn::Result<u32> {
    let takes = "a positive integer";
    let text = integer_setting(expr, "max_attempts", takes, "max_attempts = 5")?;
    match text.parse::<u32>() {
        Ok(0) => Err(syn::Error::new_spanned(
            expr,
            "`max_attempts` must be at least 1: it counts every run, the first included; \
             write `max_attempts = 1` to run a job once and never retry it",
        )),
        Ok(max) => Ok(max),
        Err(_) => Err(syn::Error::new_spanned(
            expr,
            format!(
                "`max_attempts` takes {takes} up to {}, e.g. `max_attempts = 5`",
                u32::MAX
            ),
        )),
    }
}

/// `max_run_time = "1h30m"` or `max_run_time = 90` (seconds): dj's one duration grammar (as
/// the worker's `--max-run-time`), in whole seconds, since the table stores a job's own limit
/// as a 32-bit count of seconds (68 years).
fn max_run_time(expr: &Expr) -> syn::Result<u64> {
    let message = "`max_run_time` takes a duration: a string such as \"30s\", \"15m\", \"4h\", \
                   \"1d\" or \"1h30m\" (humantime's units, in any order), or a number of seconds, \
                   e.g. `max_run_time = \"30s\"`";
    let duration = match (string(expr), integer(expr)) {
        (Some(lit), _) => parse_duration(&lit.value()).ok(),
        (None, Some(text)) => text.parse::<u64>().ok().map(Duration::from_secs),
        (None, None) => None,
    };
    let Some(duration) = duration else {
        return Err(syn::Error::new_spanned(expr, message));
    };
    if duration.subsec_nanos() != 0 {
        return Err(syn::Error::new_spanned(
            expr,
            format!(
                "`max_run_time` is stored in whole seconds, and {} is not; write e.g. `max_run_time = \"{}s\"`",
                humantime::format_duration(duration),
                duration.as_secs() + 1
            ),
        ));
    }
    match duration.as_secs() {
        0 => Err(syn::Error::new_spanned(
            expr,
            "`max_run_time` must be longer than zero, e.g. `max_run_time = \"30s\"`; \
             remove it to use the worker's limit (4h by default)",
        )),
        secs if i32::try_from(secs).is_err() => Err(syn::Error::new_spanned(
            expr,
            format!(
                "`max_run_time` can be at most {} seconds (68 years), e.g. `max_run_time = \"30d\"`",
                i32::MAX
            ),
        )),
        secs => Ok(secs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints() {
        assert_eq!(meant("attempts"), Some("max_attempts"));
        assert_eq!(meant("timeout"), Some("max_run_time"));
        assert_eq!(meant("queue_name"), Some("queue"));
        assert_eq!(meant("priorty"), Some("priority"));
        assert_eq!(meant("Queue"), Some("queue"));
        assert_eq!(meant("color"), None);
    }
}
