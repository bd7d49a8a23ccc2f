//! The job registry: every `#[derive(Job)]` / `#[dj::job]` submits one [`Registration`]
//! through `inventory`; the worker finds a stored row's type here by name. Only registered
//! types can ever be built from a row, whatever its `handler` says.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::handler::HandlerIn;
use crate::job::{BoxFuture, Job, JobError, Message, Perform};
use crate::model::{NewJob, RowOptions};
use futures_util::FutureExt;

/// One job type, as the worker sees it. Built by the macros with [`Registration::of`].
#[derive(Debug)]
pub struct Registration {
    name: &'static str,
    aliases: &'static [&'static str],
    type_name: fn() -> &'static str,
    load: fn(&str) -> serde_json::Result<Box<dyn LoadedJob>>,
    is_async: bool,
    transactional: bool,
}

impl Registration {
    /// The registration of job type `J`.
    pub const fn of<J: Job>() -> Self {
        Registration {
            name: J::NAME,
            aliases: J::ALIASES,
            type_name: std::any::type_name::<J>,
            load: load::<J>,
            is_async: <J as Perform>::__ASYNC,
            transactional: J::OPTIONS.transactional,
        }
    }
}

inventory::collect!(Registration);

fn load<J: Job>(args: &str) -> serde_json::Result<Box<dyn LoadedJob>> {
    let job: J = serde_json::from_str(args)?;
    Ok(Box::new(job))
}

/// A job loaded from its row, with its type erased: what the executor runs.
pub(crate) trait LoadedJob: Send + Sync {
    /// `before → perform → success | error → after`, each panic caught and counted as an error.
    fn invoke(&self, ctx: &Context) -> Result<(), JobError>;
    /// An async job's attempt, the same sequence with `perform` awaited; `None` for sync jobs.
    fn invoke_async<'a>(&'a self, ctx: &'a Context) -> Option<BoxFuture<'a>>;
    /// True for async jobs.
    fn is_async(&self) -> bool;
    /// True for a type marked `#[job(transactional = true)]`.
    fn transactional(&self) -> bool;
    /// The `failure` hook; a panic in it is caught and reported.
    fn failure(&self, ctx: &Context, error: &JobError) -> Result<(), String>;
    fn reschedule_at(&self, now: SystemTime, attempts: u32) -> SystemTime;
    fn max_attempts(&self) -> Option<u32>;
    fn max_run_time(&self) -> Option<Duration>;
    fn destroy_failed_jobs(&self) -> Option<bool>;
    fn display_name(&self) -> String;
    /// The row this job becomes with `options`, made as `enqueue` makes rows.
    fn row(&self, options: RowOptions) -> Result<NewJob>;
}

impl<J: Job> LoadedJob for J {
    fn invoke(&self, ctx: &Context) -> Result<(), JobError> {
        let outcome = catching(|| {
            self.before(ctx);
            Perform::perform(self, ctx).map_err(Into::into)?;
            self.success(ctx);
            Ok(())
        });
        after_attempt(self, ctx, outcome)
    }
    fn invoke_async<'a>(&'a self, ctx: &'a Context) -> Option<BoxFuture<'a>> {
        let perform = self.__perform_async(ctx)?;
        Some(Box::pin(async move {
            let outcome = match catching(|| {
                self.before(ctx);
                Ok(())
            }) {
                Err(error) => Err(error),
                Ok(()) => match AssertUnwindSafe(perform).catch_unwind().await {
                    Err(payload) => Err(panic_error(&*payload)),
                    Ok(Err(error)) => Err(error),
                    Ok(Ok(())) => catching(|| {
                        self.success(ctx);
                        Ok(())
                    }),
                },
            };
            after_attempt(self, ctx, outcome)
        }))
    }
    fn is_async(&self) -> bool {
        <J as Perform>::__ASYNC
    }
    fn transactional(&self) -> bool {
        J::OPTIONS.transactional
    }
    fn failure(&self, ctx: &Context, error: &JobError) -> Result<(), String> {
        catching(|| {
            Perform::failure(self, ctx, error);
            Ok(())
        })
        .map_err(|e| e.report())
    }
    fn reschedule_at(&self, now: SystemTime, attempts: u32) -> SystemTime {
        Perform::reschedule_at(self, now, attempts)
    }
    fn max_attempts(&self) -> Option<u32> {
        Perform::max_attempts(self).or(J::OPTIONS.max_attempts)
    }
    fn max_run_time(&self) -> Option<Duration> {
        Perform::max_run_time(self).or(J::OPTIONS.max_run_time)
    }
    fn destroy_failed_jobs(&self) -> Option<bool> {
        Perform::destroy_failed_jobs(self)
    }
    fn display_name(&self) -> String {
        Perform::display_name(self).unwrap_or_else(|| J::NAME.to_owned())
    }
    fn row(&self, options: RowOptions) -> Result<NewJob> {
        crate::row::row_of(self, options)
    }
}

/// The end of every attempt, sync or async: the `error` hook on failure, then `after`, each
/// panic in them logged and ignored.
fn after_attempt<J: Job>(
    job: &J,
    ctx: &Context,
    outcome: Result<(), JobError>,
) -> Result<(), JobError> {
    // A snooze is not a failure: no `error` hook for it.
    if let Some(error) = outcome.as_ref().err().filter(|e| !e.is_snooze()) {
        if let Err(panic) = catching(|| {
            job.error(ctx, error);
            Ok(())
        }) {
            tracing::error!("Error when running error callback: {panic}");
        }
    }
    if let Err(panic) = catching(|| {
        job.after(ctx);
        Ok(())
    }) {
        tracing::error!("Error when running after callback: {panic}");
    }
    outcome
}

/// Runs `f`, turning a panic into a failed attempt whose message is the panic's.
pub(crate) fn catching(f: impl FnOnce() -> Result<(), JobError>) -> Result<(), JobError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| Err(panic_error(&*payload)))
}

/// A panic as a failed attempt, with the panic's message.
fn panic_error(payload: &(dyn std::any::Any + Send)) -> JobError {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-string payload".to_owned());
    JobError::new(Message(format!("panicked: {text}")))
}

/// Why a stored row could not become a job. Always a permanent failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoadError(pub String);

/// Loads a stored handler as its registered type.
pub(crate) fn load_handler(handler: &str) -> Result<Box<dyn LoadedJob>, LoadError> {
    let parsed = HandlerIn::parse(handler).map_err(|e| {
        LoadError(format!(
            "Job failed to load: the handler is not dj's JSON ({e}). Handler: {}",
            abbreviate(handler)
        ))
    })?;
    let registration = registry().lookup(parsed.job)?;
    let fields = parsed
        .fields()
        .map_err(|e| LoadError(format!("Job failed to load: {e}")))?;
    (registration.load)(&fields).map_err(|e| {
        LoadError(format!(
            "Job failed to load: the stored fields do not fit `{}` ({e}). Handler: {}",
            (registration.type_name)(),
            abbreviate(handler)
        ))
    })
}

fn abbreviate(text: &str) -> String {
    const MAX: usize = 200;
    if text.len() <= MAX {
        return format!("{text:?}");
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}... ({} bytes)", &text[..end], text.len())
}

/// Every registered job, by name and alias.
pub(crate) struct Registry {
    by_name: BTreeMap<&'static str, &'static Registration>,
    duplicates: Vec<(&'static str, &'static Registration, &'static Registration)>,
}

pub(crate) fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut by_name: BTreeMap<&'static str, &'static Registration> = BTreeMap::new();
        let mut duplicates = Vec::new();
        for registration in inventory::iter::<Registration> {
            let names =
                std::iter::once(registration.name).chain(registration.aliases.iter().copied());
            for name in names {
                if let Some(first) = by_name.insert(name, registration) {
                    if !std::ptr::eq(first, registration) {
                        duplicates.push((name, first, registration));
                    }
                }
            }
        }
        Registry {
            by_name,
            duplicates,
        }
    })
}

impl Registry {
    /// True if any registered job is a [`crate::PerformAsync`] job: the worker then starts its
    /// tokio runtime.
    pub(crate) fn has_async(&self) -> bool {
        self.by_name.values().any(|r| r.is_async)
    }

    /// The names (and aliases) of the types marked `#[job(transactional = true)]`: rows a
    /// fast lane must leave to the ordinary claim.
    pub(crate) fn transactional_names(&self) -> Vec<&'static str> {
        (self.by_name.iter())
            .filter(|(_, r)| r.transactional)
            .map(|(name, _)| *name)
            .collect()
    }

    /// Fails on the first name claimed by two types: called at worker start.
    pub(crate) fn check(&self) -> Result<()> {
        match self.duplicates.first() {
            None => Ok(()),
            Some((name, a, b)) => {
                let (mut first, mut second) = ((a.type_name)(), (b.type_name)());
                if first > second {
                    std::mem::swap(&mut first, &mut second);
                }
                Err(Error::DuplicateJobName {
                    name: (*name).to_owned(),
                    first,
                    second,
                })
            }
        }
    }

    fn lookup(&self, name: &str) -> Result<&'static Registration, LoadError> {
        self.by_name.get(name).copied().ok_or_else(|| {
            LoadError(format!(
                "Job failed to load: no job named `{name}` is registered in this worker (known: {}); \
                 make the worker binary use the crate that defines it (for example `dj::main!(that_crate::state)`), or keep an old name with `#[job(aliases = [\"{name}\"])]`",
                self.known()
            ))
        })
    }

    /// The registered name (as `&'static`) of `name`, an alias resolved to its type's name.
    pub(crate) fn name_of(&self, name: &str) -> Option<&'static str> {
        self.by_name.get(name).map(|r| r.name)
    }

    /// The registered names close to `name`, for a "did you mean" hint: see [`close_names`].
    #[cfg(feature = "cli")]
    pub(crate) fn close_to(&self, name: &str) -> Vec<&'static str> {
        close_names(name, self.by_name.keys().copied())
    }

    /// The registered names, comma-separated, for messages.
    pub(crate) fn known(&self) -> String {
        if self.by_name.is_empty() {
            return "none".to_owned();
        }
        self.by_name.keys().copied().collect::<Vec<_>>().join(", ")
    }
}

/// The names of `known` that `name` most likely means: the same letters and digits whatever
/// the case and separators (`SendWelcome`, `send-welcome` for `send_welcome`, the stored name
/// of a `#[dj::job]` function), or, both at least four long, one within the other
/// (`welcome`).
#[cfg(feature = "cli")]
fn close_names<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    fn key(name: &str) -> String {
        name.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    }
    let wanted = key(name);
    if wanted.is_empty() {
        return Vec::new();
    }
    known
        .filter(|candidate| {
            let candidate = key(candidate);
            candidate == wanted
                || (wanted.len().min(candidate.len()) >= 4
                    && (candidate.contains(&wanted) || wanted.contains(&candidate)))
        })
        .collect()
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::close_names;

    #[test]
    fn close_names_ignore_case_and_separators_and_find_parts() {
        let known = ["send_welcome", "FetchFeed", "mail.digest", "add"];
        let close = |name| close_names(name, known.iter().copied());
        assert_eq!(close("SendWelcome"), ["send_welcome"]);
        assert_eq!(close("send-welcome"), ["send_welcome"]);
        assert_eq!(close("fetch_feed"), ["FetchFeed"]);
        assert_eq!(close("welcome"), ["send_welcome"]);
        assert_eq!(close("MailDigestJob"), ["mail.digest"]);
        assert_eq!(close("ADD"), ["add"]);
        assert!(close("address").is_empty(), "too short to be a part");
        assert!(close("Unrelated").is_empty());
        assert!(close("__").is_empty());
    }
}
