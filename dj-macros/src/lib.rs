//! The macros of [dj](https://docs.rs/dj), delayed_job for Rust: `#[derive(Job)]` declares a
//! job type, `#[dj::job]` turns a function into one. Use them through `dj`, which re-exports
//! both; the code they generate names only `::dj::...`.
//!
//! Inside, as in serde_derive: `attr` parses `#[job(...)]`, `ast` is the model of the input,
//! `check` reports what is not allowed (every mistake at its own token, all in one pass),
//! `expand` writes the code from the model, and `fallback` is what is emitted beside errors.
//! `rules` are dj's own files for the rules both crates check (queue names, durations).
//!
//! The examples below are marked `ignore` because this crate cannot depend on `dj`; dj's own
//! crate docs and its `examples/` run them.

mod ast;
mod attr;
mod check;
mod errors;
mod expand;
mod fallback;

/// dj's own rule files (`src/rules` links to `dj/src/rules`): a setting is checked here by
/// the code the runtime runs.
mod rules {
    pub(crate) mod duration;
    pub(crate) mod queue_name;
    pub(crate) mod rate;
}

use proc_macro::TokenStream;

/// Declares a job type: implements [`dj::Job`] for it and registers it, so that any worker
/// binary linking the crate can load stored jobs of this type by name.
///
/// The type also derives serde's `Serialize` and `Deserialize` (its fields are what is stored)
/// and implements `dj::Perform` (what a run does). Structs, tuple structs, unit structs and
/// enums are accepted; generic types, unions and fields that borrow (`&str`) are not, since a
/// stored job is one concrete type that owns its data.
///
/// ```ignore
/// use dj::{Job, Perform};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Job, Serialize, Deserialize)]
/// #[job(queue = "feeds", priority = 0, max_attempts = 5, max_run_time = "30s")]
/// struct FetchFeed {
///     url: String,
/// }
///
/// impl Perform for FetchFeed {
///     type Error = std::io::Error;
///     fn perform(&self, _ctx: &dj::Context) -> Result<(), Self::Error> {
///         println!("fetching {}", self.url);
///         Ok(())
///     }
/// }
///
/// let id = FetchFeed { url: "https://example.com/feed".into() }.delay().enqueue(&db)?;
/// ```
///
/// # Settings: `#[job(...)]`
///
/// All optional. Write them in one attribute or in several, below the derive; each key at
/// most once. `#[dj::job(...)]` takes the same keys. `queue` and `priority` are defaults that
/// an enqueue can override (`.delay().queue("..").priority(..)`).
///
/// | key | value | without it |
/// |---|---|---|
/// | `name` | the stored name, a string without whitespace | the type's name |
/// | `aliases` | a list of older stored names | none |
/// | `queue` | a string | no queue |
/// | `priority` | an `i32`, lower runs first | 0 |
/// | `max_attempts` | runs in all, at least 1 | the worker's (25) |
/// | `max_run_time` | whole seconds: `"30s"`, `"5m"`, `"4h"`, `"1d"`, `"1h30m"`, or `90` | the worker's (4h) |
/// | `unique` | fields that make the key, `"customer_id, region"`, or `true` (the whole payload) | not unique |
/// | `on_duplicate` | `"skip"` or `"replace"` (with `unique`) | `"skip"` |
/// | `unique_until` | `"start"` or `"done"` (with `unique`) | `"start"` |
/// | `concurrency_key` | fields that make the key, `"customer_id"` | no limit |
/// | `concurrency` | how many with one key run at once, at least 1 (with `concurrency_key`) | 1, or no bound with `rate` |
/// | `fairness_key` | fields that make a key (a tenant) whose jobs are claimed round-robin with other keys', bounding nothing (not with `concurrency_key` or `sequence`) | none |
/// | `rate` | at most so many starts per period, per key (or per type without a key): `"20/s"`, `"100/min"`, `"5/10s"` | no rate |
/// | `sequence` | fields that make a sequence key: its jobs run one at a time, in enqueue order (not with `concurrency_key`) | none |
/// | `transactional` | `true`: the job completes its row in its own database transaction (`Context::complete_in`) | `false` |
/// | `encrypted` | `true`: the job's fields are stored encrypted (keys from `DJ_ENCRYPTION_KEYS`) | `false` |
/// | `cron` | a cron expression, five fields or six with seconds first (on a `Default` type) | not recurring |
/// | `tz` | an IANA time zone for `cron` | `"UTC"` |
/// | `missed` | `"once"` or `"skip"`: a window of fire times missed while no worker ran | `"once"` |
///
/// ## `name` and `aliases`
///
/// The name is stored in every row and is how a worker finds the type, so it should outlive
/// renames of the Rust type: fix it with `name`, and list names that rows already in the table
/// may carry with `aliases`.
///
/// ```ignore
/// #[derive(Job, Serialize, Deserialize)]
/// #[job(name = "fetch_feed", aliases = ["FetchFeed", "RefreshFeed"])]
/// struct FetchFeed {
///     url: String,
/// }
/// ```
///
/// ## `queue` and `priority`
///
/// Where a job goes and how soon it runs. Workers can be limited to queues (`--queues
/// feeds,mail`) and priorities (`--min-priority`, `--max-priority`).
///
/// ```ignore
/// #[derive(Job, Serialize, Deserialize)]
/// #[job(queue = "mail", priority = -10)]
/// struct SendReceipt {
///     order_id: i64,
/// }
/// ```
///
/// ## `max_attempts` and `max_run_time`
///
/// How many runs a job gets before it fails for good (the first run counts), and how long one
/// run may take before it counts as a failed attempt. Units of `max_run_time` go from the
/// largest: `d`, `h`, `m`, `s`; an integer means seconds.
///
/// ```ignore
/// #[derive(Job, Serialize, Deserialize)]
/// #[job(max_attempts = 3, max_run_time = "1h30m")]
/// struct RebuildSearchIndex;
///
/// #[derive(Job, Serialize, Deserialize)]
/// #[job(max_attempts = 1, max_run_time = 90)] // run once, never retry; 90 seconds
/// enum Notify {
///     Email { to: String },
///     Sms(String),
/// }
/// ```
///
/// ## `unique` and `concurrency_key`
///
/// A unique job is not enqueued twice while one with its key waits: a second enqueue returns
/// the waiting job's id (`enqueue_outcome` says it was a duplicate), or with `on_duplicate =
/// "replace"` gives it the new payload and run time. The key is the named fields' values
/// (as JSON), scoped to the job's name; it is freed when the job starts, or with
/// `unique_until = "done"` when it succeeds or fails for good. `concurrency_key` limits how
/// many jobs with one key run at once across every worker (`concurrency`, default 1);
/// `sequence` runs the jobs of one key one at a time in enqueue order (see
/// `Delayed::sequence`). Jobs with any of these keys are claimed round-robin between keys;
/// `fairness_key` is a key that does only that (a tenant whose backlog must not hold the
/// others back). An enqueue's `.unique(key)`, `.concurrency_key(key, n)`, `.sequence(key)`
/// and `.fairness_key(key)` override them.
///
/// ```ignore
/// #[derive(Job, Serialize, Deserialize)]
/// #[job(unique = "customer_id", concurrency_key = "customer_id")]
/// struct SyncCustomer {
///     customer_id: i64,
///     reason: String, // not part of either key
/// }
/// ```
///
/// ## `rate`
///
/// At most so many jobs start per period, across every worker: `"STARTS/PERIOD"`, the period
/// a duration (`"10s"`, `"250ms"`) or a unit alone (`"s"`, `"min"`, `"h"`, `"d"`). With a
/// `concurrency_key` the rate is per key (and `concurrency` is unbounded unless given);
/// without one, every job of the type shares it. A job held back waits in the table without
/// counting an attempt. An enqueue's `.rate_limit(rate)` overrides it; `worker rate` changes
/// a key's or a queue's rate at run time.
///
/// ```ignore
/// #[derive(Job, Serialize, Deserialize)]
/// #[job(concurrency_key = "partner", rate = "100/min")] // each partner's API: 100 calls a minute
/// struct CallPartner {
///     partner: String,
///     payload: String,
/// }
/// ```
///
/// ## `cron`, `tz` and `missed`
///
/// A recurring job: each fire time enqueues `Self::default()` once, across every worker. A
/// `#[dj::job(cron = ..)]` function takes no arguments; give a schedule arguments at run time
/// with `dj::Schedule`.
///
/// ```ignore
/// #[derive(Default, Job, Serialize, Deserialize)]
/// #[job(cron = "0 30 2 * * *", tz = "Europe/Paris", missed = "skip")]
/// struct NightlyCleanup;
/// ```
///
/// [`dj::Job`]: https://docs.rs/dj/latest/dj/trait.Job.html
#[proc_macro_derive(Job, attributes(job))]
pub fn derive_job(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    expand::derive::derive(&input).into()
}

/// Makes a function a job: the function stays as it is, and beside it comes a struct of its
/// arguments that is a job whose `perform` calls it (delayed_job's `handle_asynchronously`).
///
/// The struct is named after the function in UpperCamelCase (`send_welcome` →
/// `SendWelcome`), has the function's visibility, and one public field per parameter. Its
/// stored name is the function's name unless `name` says otherwise; the settings are the ones
/// [`derive@Job`] takes.
///
/// ```ignore
/// #[dj::job(queue = "mail", max_attempts = 5)]
/// fn send_welcome(user_id: i64, email: String) -> Result<(), MailError> {
///     mailer().send(&email, &format!("welcome, user {user_id}"))
/// }
///
/// let id = SendWelcome { user_id: 7, email: "a@example.com".into() }.delay().enqueue(&db)?;
/// send_welcome(7, "a@example.com".into())?; // still callable directly
/// ```
///
/// The function:
/// - returns `()` (the job cannot fail) or `Result<(), E>`, where `E` is any
///   `std::error::Error + Send + Sync` or a `dj::JobError`;
/// - takes owned parameters that are `Serialize`, `Deserialize` and `Clone` (each attempt gets
///   clones of the stored values), with plain names;
/// - may take the worker's context as its first parameter, which is passed in and not stored:
///
/// ```ignore
/// #[dj::job]
/// fn rebuild_report(ctx: &dj::Context, report_id: u64) {
///     let pool = ctx.state::<Pool>();
///     // ...
/// }
/// ```
///
/// It may be `async`: the job then implements `dj::PerformAsync`, and the worker runs it on
/// its tokio runtime (its future must be `Send`, and `max_run_time` drops it at the deadline):
///
/// ```ignore
/// #[dj::job]
/// async fn send_welcome(user_id: i64) -> Result<(), MailError> {
///     mailer().send_async(user_id).await
/// }
/// ```
///
/// It cannot be generic, a method, `const`, `unsafe` or `extern`, or take references (other
/// than the context) or `impl Trait`: each is a compile error at the token.
#[proc_macro_attribute]
pub fn job(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::job_fn::job_fn(args.into(), item.into()).into()
}
