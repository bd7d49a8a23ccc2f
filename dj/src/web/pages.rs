//! The pages and actions. Every database call runs on a blocking thread (the `Db` API is
//! sync); every page is a template that escapes what it prints.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Extension, Form, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::{App, Who};
use crate::model::{Cancel, JobFilter, JobId, JobRow, JobState, Order};
use crate::model::{QueueStats, RateLimit, RateScope, ScheduleRow, WorkerRow};
use crate::time::rfc3339;

/// Rows on one page of a listing.
const PAGE: i64 = 50;

/// The longest queue, name or search text a filter takes, in bytes (a queue name's limit).
const MAX_FILTER_TEXT: usize = crate::MAX_QUEUE_NAME;

pub(super) fn templates() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    for (name, source) in [
        ("layout.html", include_str!("templates/layout.html")),
        ("overview.html", include_str!("templates/overview.html")),
        (
            "overview_body.html",
            include_str!("templates/overview_body.html"),
        ),
        ("jobs.html", include_str!("templates/jobs.html")),
        ("jobs_body.html", include_str!("templates/jobs_body.html")),
        ("job.html", include_str!("templates/job.html")),
        ("confirm.html", include_str!("templates/confirm.html")),
        ("error.html", include_str!("templates/error.html")),
        ("workflows.html", include_str!("templates/workflows.html")),
        ("workflow.html", include_str!("templates/workflow.html")),
    ] {
        env.add_template(name, source)
            .expect("dj's own templates parse");
    }
    env.add_function("when", |time: String, now: String| {
        super::view::when(&time, &now)
    });
    env
}

/// A page or an error page: what a handler returns.
pub(super) type Page = Result<Response, Refusal>;

/// An error page, boxed (a response is large, and most results are not errors).
pub(super) struct Refusal(Box<Response>);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        *self.0
    }
}

pub(super) fn refuse(app: &App, status: StatusCode, message: &str) -> Refusal {
    Refusal(Box::new(error_page(app, status, message)))
}

pub(super) fn render(app: &App, name: &str, ctx: minijinja::Value) -> Page {
    let base = context! {
        base => app.config.base_path,
        read_only => app.config.read_only,
        csrf => app.csrf,
        database => app.db.url(),
        states => states(),
    };
    let ctx = context! { ..ctx, ..base };
    match app.templates.get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => Ok(Html(html).into_response()),
        Err(e) => Err(refuse(
            app,
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("template {name}: {e}"),
        )),
    }
}

/// The job states, in order, as every page lists them (the menu, the state filter, the
/// overview's columns).
fn states() -> [&'static str; 4] {
    JobState::ALL.map(JobState::as_str)
}

pub(super) fn error_page(app: &App, status: StatusCode, message: &str) -> Response {
    let html = app
        .templates
        .get_template("error.html")
        .and_then(|t| {
            t.render(context! {
                title => status.as_str(),
                status => status.to_string(),
                message => message,
                base => app.config.base_path,
                read_only => app.config.read_only,
                database => app.db.url(),
                states => states(),
            })
        })
        .unwrap_or_else(|_| message.to_owned());
    (status, Html(html)).into_response()
}

/// Runs a database call on a blocking thread.
pub(super) async fn db<T: Send + 'static>(
    app: &Arc<App>,
    f: impl FnOnce(&crate::Db) -> crate::Result<T> + Send + 'static,
) -> Result<T, Refusal> {
    let db = app.db.clone();
    match tokio::task::spawn_blocking(move || f(&db)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(refuse(
            app,
            StatusCode::INTERNAL_SERVER_ERROR,
            &e.to_string(),
        )),
        Err(e) => Err(refuse(
            app,
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the database call panicked: {e}"),
        )),
    }
}

#[derive(Serialize)]
struct QueueView {
    label: String,
    queue: Option<String>,
    /// Jobs by state (`ready`, ..., as [`JobState::as_str`] names them).
    #[serde(flatten)]
    counts: BTreeMap<&'static str, i64>,
    oldest_ready: String,
    paused: bool,
    limit: Option<u32>,
    /// Its rate limit, as `STARTS/PERIOD`.
    rate: Option<String>,
}

/// What the overview shows, as read from the database in one blocking call.
struct Overview {
    now: SystemTime,
    stats: Vec<QueueStats>,
    paused: Vec<String>,
    limits: Vec<(String, u32)>,
    rates: Vec<RateLimit>,
    workers: Vec<WorkerRow>,
    schedules: Vec<ScheduleRow>,
    throughput: Vec<(SystemTime, i64, i64)>,
}

async fn overview_context(app: &Arc<App>) -> Result<minijinja::Value, Refusal> {
    let overview = db(app, |db| {
        Ok(Overview {
            now: db.now()?,
            stats: db.stats()?,
            paused: db.paused_queues()?,
            limits: db.queue_limits()?,
            rates: db.rate_limits()?,
            workers: db.workers()?,
            schedules: db.store().cron_list()?,
            throughput: db.throughput(60)?,
        })
    })
    .await?;
    let now = overview.now;
    let totals = totals(&overview.stats);
    Ok(context! {
        title => "overview",
        queues => queue_views(&overview),
        totals => totals,
        workers => worker_views(&overview.workers),
        schedules => schedule_views(&overview.schedules),
        throughput => throughput_view(now, &overview.throughput),
        chart => chart_view(now, &overview.throughput),
        now => rfc3339(now),
    })
}

/// Succeeded and failed attempts in the last hour, the last five minutes, and per minute.
fn throughput_view(now: SystemTime, throughput: &[(SystemTime, i64, i64)]) -> minijinja::Value {
    let recent = |minutes| crate::model::throughput_within(throughput, now, minutes);
    context! {
        hour => recent(60),
        five => recent(5),
        minutes => throughput
            .iter()
            .map(|(minute, s, f)| context! { minute => rfc3339(*minute), succeeded => s, failed => f })
            .collect::<Vec<_>>(),
    }
}

/// The last hour's attempts per minute as the overview's bar chart.
fn chart_view(now: SystemTime, throughput: &[(SystemTime, i64, i64)]) -> minijinja::Value {
    let (bars, peak) = super::view::throughput_bars(now, throughput);
    context! { bars => bars, peak => peak, minutes => super::view::CHART_MINUTES }
}

/// Jobs by state over every queue; a state no queue has counts 0.
fn totals(stats: &[QueueStats]) -> BTreeMap<&'static str, i64> {
    JobState::ALL
        .iter()
        .map(|&state| {
            let total = stats.iter().map(|q| q.count(state)).sum();
            (state.as_str(), total)
        })
        .collect()
}

/// One row per queue: its counts by state, the oldest ready job's age, whether it is paused
/// or limited.
fn queue_views(overview: &Overview) -> Vec<QueueView> {
    overview
        .stats
        .iter()
        .map(|q| {
            let named = q.queue.clone();
            QueueView {
                label: named.clone().unwrap_or_else(|| "(none)".into()),
                paused: named.as_ref().is_some_and(|n| overview.paused.contains(n)),
                limit: named.as_ref().and_then(|n| {
                    overview
                        .limits
                        .iter()
                        .find(|(q, _)| q == n)
                        .map(|(_, l)| *l)
                }),
                rate: named.as_ref().and_then(|n| {
                    overview
                        .rates
                        .iter()
                        .find(|r| r.scope == RateScope::Queue(n.clone()))
                        .map(|r| r.rate.to_string())
                }),
                queue: named,
                counts: JobState::ALL
                    .iter()
                    .map(|&state| (state.as_str(), q.count(state)))
                    .collect(),
                oldest_ready: q
                    .oldest_ready_age
                    .map(|s| {
                        humantime::format_duration(std::time::Duration::from_secs(s as u64))
                            .to_string()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect()
}

fn worker_views(workers: &[WorkerRow]) -> Vec<minijinja::Value> {
    workers
        .iter()
        .map(|w| {
            context! {
                name => w.name,
                host => w.host,
                queues => w.queues.clone().unwrap_or_else(|| "all".into()),
                running => w.running,
                heartbeat => rfc3339(w.heartbeat_at),
                started => rfc3339(w.started_at),
            }
        })
        .collect()
}

fn schedule_views(schedules: &[ScheduleRow]) -> Vec<minijinja::Value> {
    schedules
        .iter()
        .map(|s| {
            context! {
                name => s.name,
                expression => s.expression,
                tz => s.tz,
                job => s.job_name,
                last => s.last_fire_at.map(rfc3339).unwrap_or_else(|| "never".into()),
                next => s.next_fire_at.map(rfc3339).unwrap_or_else(|| "none".into()),
            }
        })
        .collect()
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct OverviewQuery {
    notice: Option<String>,
}

pub(super) async fn overview(
    State(app): State<Arc<App>>,
    Query(query): Query<OverviewQuery>,
) -> Page {
    let ctx = overview_context(&app).await?;
    render(
        &app,
        "overview.html",
        context! { notice => query.notice, ..ctx },
    )
}

pub(super) async fn overview_fragment(State(app): State<Arc<App>>) -> Page {
    let ctx = overview_context(&app).await?;
    render(&app, "overview_body.html", ctx)
}

/// A listing's filter as the query string (and the bulk forms) carry it: text, checked by
/// [`FilterQuery::filter`], so that every bad value gets a 400 that says what to write.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(super) struct FilterQuery {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    state: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    queue: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    q: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    sort: String,
    /// A search reads rows with ids below this one (the "search older" link).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    before: String,
    /// A search reads rows with ids from this one on, instead of the window's own edge: a
    /// confirmation page pins the rows it counted this way.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    from: String,
    /// `1`: a search reads every row.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    all: String,
}

/// Which rows a text search reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Every row (`all=1`, or `--search-window 0`).
    All,
    /// Rows with ids below `before` (`None`: any) and from `from` on (`None`: the newest
    /// `--search-window` of them).
    Window {
        before: Option<JobId>,
        from: Option<JobId>,
    },
}

/// A filter read from a request: the store's filter and, for a search, where it reads.
#[derive(Debug, Clone)]
struct Selection {
    filter: JobFilter,
    scope: Option<Scope>,
}

/// The rows a search read: ids from `from` (`JobId::MIN`: the oldest row) to below `before`
/// (`None`: the newest).
#[derive(Debug, Clone, Copy)]
struct Window {
    size: u32,
    from: JobId,
    before: Option<JobId>,
    /// Rows older than `from` exist (the "search older" link).
    older: bool,
    /// `from` was given rather than found.
    pinned: bool,
}

impl Selection {
    /// Narrows the filter to the rows its search reads (two rows of the primary key, `size`
    /// rows down, find the window's edge), and says which those were; a filter without
    /// search is unchanged.
    fn windowed(mut self, db: &crate::Db, size: u32) -> crate::Result<(JobFilter, Option<Window>)> {
        let Some(Scope::Window { before, from }) = self.scope else {
            return Ok((self.filter, None));
        };
        let upto = before.map_or(JobId::MAX, |id| id - 1);
        let window = match from {
            Some(from) => Window {
                size,
                from,
                before,
                older: false,
                pinned: true,
            },
            None => {
                let edge = db.jobs(&JobFilter {
                    ids: Some(JobId::MIN..=upto),
                    order: Order::IdDesc,
                    limit: Some(2),
                    offset: Some(i64::from(size) - 1),
                    ..JobFilter::default()
                })?;
                Window {
                    size,
                    from: edge.first().map_or(JobId::MIN, |row| row.id),
                    before,
                    older: edge.len() == 2,
                    pinned: false,
                }
            }
        };
        self.filter.ids = Some(window.from..=upto);
        Ok((self.filter, Some(window)))
    }
}

impl FilterQuery {
    /// The store's filter (limit and page apart); a bad value is a 400 naming the fix.
    fn filter(&self, app: &App) -> Result<Selection, Refusal> {
        let bad = |message: String| refuse(app, StatusCode::BAD_REQUEST, &message);
        for (key, value) in [("queue", &self.queue), ("name", &self.name), ("q", &self.q)] {
            if value.len() > MAX_FILTER_TEXT {
                return Err(bad(format!(
                    "`{key}` is at most {MAX_FILTER_TEXT} bytes (this one has {})",
                    value.len()
                )));
            }
        }
        let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let state = match self.state.as_str() {
            "" => None,
            s => Some(s.parse::<JobState>().map_err(bad)?),
        };
        let order = match self.sort.as_str() {
            "" | "id" => Order::Id,
            "-id" => Order::IdDesc,
            "run_at" => Order::RunAt,
            "-run_at" => Order::RunAtDesc,
            other => {
                return Err(bad(format!(
                    "unknown sort `{other}`; expected one of: id, -id, run_at, -run_at"
                )))
            }
        };
        let id = |key: &str, text: &str, min: JobId| match number(text) {
            None => Ok(None),
            Some(Ok(id)) if id >= min => Ok(Some(id)),
            Some(_) => Err(bad(format!(
                "`{key}` is a job id, a whole number from {min} to {}; got `{text}`",
                JobId::MAX
            ))),
        };
        let before = id("before", &self.before, 1)?;
        let from = id("from", &self.from, JobId::MIN)?;
        let all = match self.all.as_str() {
            "" => false,
            "1" => true,
            _ => return Err(bad("`all` takes 1 (search every row) or nothing".into())),
        };
        let scope = if self.q.is_empty() {
            None
        } else if all || app.config.search_window == 0 {
            Some(Scope::All)
        } else {
            Some(Scope::Window { before, from })
        };
        Ok(Selection {
            filter: JobFilter {
                state,
                queue: some(&self.queue),
                name: some(&self.name),
                search: some(&self.q),
                order,
                ..JobFilter::default()
            },
            scope,
        })
    }

    fn described(&self, window: Option<Window>) -> String {
        let mut parts = Vec::new();
        for (key, value) in [
            ("state", &self.state),
            ("queue", &self.queue),
            ("name", &self.name),
            ("text", &self.q),
        ] {
            if !value.is_empty() {
                parts.push(format!("{key} {value:?}"));
            }
        }
        if let Some(searched) = window.and_then(|w| w.described()) {
            parts.push(format!("among {searched}"));
        }
        if parts.is_empty() {
            "no filter (all jobs)".into()
        } else {
            parts.join(", ")
        }
    }

    /// The same filter, reading the rows before id `before` (`None`: every row).
    fn window_link(&self, before: Option<JobId>) -> String {
        let query = FilterQuery {
            before: before.map(|id| id.to_string()).unwrap_or_default(),
            from: String::new(),
            all: if before.is_none() { "1" } else { "" }.into(),
            ..self.clone()
        };
        serde_urlencoded::to_string(&query).unwrap_or_default()
    }

    /// The same filter, reading exactly the rows of `window` (a confirmation's).
    fn pinned(&self, window: Option<Window>) -> FilterQuery {
        let mut pinned = self.clone();
        if let Some(window) = window {
            pinned.from = window.from.to_string();
        }
        pinned
    }
}

impl Window {
    /// Which rows were searched, in words (`None`: every row).
    fn described(&self) -> Option<String> {
        let ids = match (self.from, self.before) {
            (JobId::MIN, None) => return None,
            (JobId::MIN, Some(before)) => format!("ids below {before}"),
            (from, None) => format!("ids from {from}"),
            (from, Some(before)) => format!("ids {from} to {}", before - 1),
        };
        let size = self.size;
        Some(match (self.pinned, self.before, self.from) {
            (true, ..) => ids,
            (false, None, _) => format!("the newest {size} rows ({ids})"),
            (false, Some(_), JobId::MIN) => format!("the oldest rows ({ids})"),
            (false, Some(_), _) => format!("{size} older rows ({ids})"),
        })
    }
}

/// A whole-number parameter: `None` when absent or empty, else the number or why not.
fn number(text: &str) -> Option<Result<i64, std::num::ParseIntError>> {
    (!text.is_empty()).then(|| text.parse::<i64>())
}

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    #[serde(flatten)]
    filter: FilterQuery,
    #[serde(default)]
    page: String,
    fragment: Option<String>,
    notice: Option<String>,
}

#[derive(Serialize)]
struct RowView {
    id: i64,
    name: String,
    queue: String,
    state: &'static str,
    attempts: i32,
    run_at: String,
    error_line: String,
    /// A running job's reported progress, as `42% message`.
    progress: String,
}

/// A progress report as the pages show it.
fn progress_text(p: &crate::Progress) -> String {
    let percent = (p.fraction * 100.0).floor();
    if p.message.is_empty() {
        format!("{percent}%")
    } else {
        format!("{percent}% {}", p.message)
    }
}

pub(super) async fn jobs(State(app): State<Arc<App>>, Query(query): Query<ListQuery>) -> Page {
    let selection = query.filter.filter(&app)?;
    // A page before the first is the first; one past the last, the last (known once counted).
    let page = match number(&query.page) {
        None => 1,
        Some(Ok(page)) => page,
        Some(Err(_)) => {
            return Err(refuse(
                &app,
                StatusCode::BAD_REQUEST,
                &format!(
                    "`page` is a whole number from 1 to {}; got `{}`",
                    i64::MAX,
                    query.page
                ),
            ))
        }
    };
    let size = app.config.search_window;
    let (now, window, (total, page, rows), progress) = db(&app, move |db| {
        let (filter, window) = selection.windowed(db, size)?;
        let listed = one_page(db, filter, page)?;
        let running: Vec<i64> = (listed.2.iter())
            .filter(|r| r.locked_by.is_some())
            .map(|r| r.id)
            .collect();
        let progress = if running.is_empty() {
            Vec::new()
        } else {
            db.jobs_progress(&running)?
        };
        Ok((db.now()?, window, listed, progress))
    })
    .await?;
    let progress: std::collections::HashMap<i64, String> = (progress.iter())
        .map(|(id, p)| (*id, progress_text(p)))
        .collect();
    let jobs: Vec<RowView> = rows
        .iter()
        .map(|row| RowView {
            id: row.id,
            name: row.name.clone(),
            queue: row.queue.clone().unwrap_or_default(),
            state: row.state(now).as_str(),
            attempts: row.attempts,
            run_at: rfc3339(row.run_at),
            error_line: row
                .last_error
                .as_deref()
                .and_then(|e| e.lines().next())
                .unwrap_or("")
                .to_owned(),
            progress: progress.get(&row.id).cloned().unwrap_or_default(),
        })
        .collect();
    let search = window.and_then(|w| {
        Some(context! {
            searched => w.described()?,
            older => w.older.then(|| query.filter.window_link(Some(w.from))),
            all => query.filter.window_link(None),
        })
    });
    let ctx = context! {
        title => "jobs",
        jobs => jobs,
        total => total,
        page => page,
        pages => pages(total),
        filter => query.filter,
        search => search,
        notice => query.notice,
        now => rfc3339(now),
    };
    let template = if query.fragment.is_some() {
        "jobs_body.html"
    } else {
        "jobs.html"
    };
    render(&app, template, ctx)
}

/// The rows of page `page` (clamped to the pages there are), with the total and that page. A
/// first page that is not full is the whole count: a search then reads its window once.
fn one_page(
    db: &crate::Db,
    filter: JobFilter,
    page: i64,
) -> crate::Result<(i64, i64, Vec<JobRow>)> {
    let listing = |page: i64| JobFilter {
        limit: Some(PAGE),
        offset: Some((page - 1) * PAGE),
        ..filter.clone()
    };
    if page <= 1 {
        let rows = db.jobs(&listing(1))?;
        let total = match i64::try_from(rows.len()) {
            Ok(n) if n < PAGE => n,
            _ => db.count_jobs(&filter)?,
        };
        return Ok((total, 1, rows));
    }
    let total = db.count_jobs(&filter)?;
    let page = page.min(pages(total));
    Ok((total, page, db.jobs(&listing(page))?))
}

/// Pages of a listing of `total` rows: at least one.
fn pages(total: i64) -> i64 {
    ((total + PAGE - 1) / PAGE).max(1)
}

#[derive(Debug, Deserialize)]
pub(super) struct JobQuery {
    pub(super) notice: Option<String>,
}

/// The actions a job in `state` offers.
fn actions(state: JobState) -> &'static [&'static str] {
    match state {
        JobState::Ready => &["delete", "cancel"],
        JobState::Scheduled => &["run", "delete", "cancel"],
        JobState::Running => &["unlock", "cancel"],
        JobState::Failed => &["retry", "delete"],
    }
}

fn columns(row: &JobRow) -> Vec<(&'static str, String)> {
    let time = |t: Option<SystemTime>| t.map(rfc3339).unwrap_or_default();
    vec![
        ("id", row.id.to_string()),
        ("name", row.name.clone()),
        ("queue", row.queue.clone().unwrap_or_default()),
        ("priority", row.priority.to_string()),
        ("attempts", row.attempts.to_string()),
        ("snoozes", row.snoozes.to_string()),
        ("run_at", rfc3339(row.run_at)),
        ("locked_at", time(row.locked_at)),
        ("locked_by", row.locked_by.clone().unwrap_or_default()),
        ("started_at", time(row.started_at)),
        ("failed_at", time(row.failed_at)),
        ("created_at", rfc3339(row.created_at)),
        ("updated_at", rfc3339(row.updated_at)),
        (
            "max_run_time",
            row.max_run_time
                .map(|s| format!("{s} s"))
                .unwrap_or_default(),
        ),
        ("crashes", row.crashes.to_string()),
        ("unique_key", row.unique_key.clone().unwrap_or_default()),
        (
            "concurrency_key",
            row.concurrency_key.clone().unwrap_or_default(),
        ),
    ]
}

/// A handler as the job page shows it: encrypted fields as the key they are sealed under,
/// not the sealed text.
fn shown_sealed(mut handler: serde_json::Value) -> serde_json::Value {
    if let Some(sealed) = handler.get("encrypted").and_then(|v| v.as_str()) {
        let shown = match crate::crypt::key_id(sealed) {
            Some(id) => format!("(encrypted with key {id})"),
            None => "(encrypted)".to_owned(),
        };
        handler["encrypted"] = serde_json::Value::String(shown);
    }
    handler
}

/// The attempt history as the job page lists it: number, start, duration, worker, error.
fn timeline(attempts: &[crate::Attempt]) -> Vec<minijinja::Value> {
    (attempts.iter())
        .map(|a| {
            context! {
                attempt => a.attempt,
                started_at => rfc3339(a.started_at),
                duration => format!("{:.3} s", a.duration().as_secs_f64()),
                worker => a.worker.clone(),
                error => a.error.clone(),
            }
        })
        .collect()
}

pub(super) async fn job(
    State(app): State<Arc<App>>,
    Path(id): Path<i64>,
    Query(query): Query<JobQuery>,
) -> Page {
    let (now, row, attempts, progress) = db(&app, move |db| {
        let progress = db.job_progress(id)?;
        Ok((db.now()?, db.job(id)?, db.job_attempts(id)?, progress))
    })
    .await?;
    let Some(row) = row else {
        return Err(refuse(
            &app,
            StatusCode::NOT_FOUND,
            &format!("no job {id}: it finished, was deleted, or never existed"),
        ));
    };
    let handler = serde_json::from_str::<serde_json::Value>(&row.handler)
        .map(shown_sealed)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| row.handler.clone());
    let state = row.state(now);
    let ctx = context! {
        title => format!("job {id}"),
        job => context! {
            id => row.id,
            state => state.as_str(),
            last_error => row.last_error.clone().unwrap_or_default(),
        },
        columns => columns(&row),
        attempts => timeline(&attempts),
        progress => progress.as_ref().map(progress_text),
        fraction => progress.as_ref().map(|p| p.fraction),
        handler => handler,
        actions => actions(state),
        notice => query.notice,
        now => rfc3339(now),
    };
    render(&app, "job.html", ctx)
}

#[derive(Debug, Deserialize)]
pub(super) struct ActionForm {
    #[serde(default)]
    csrf: String,
}

impl ActionForm {
    pub(super) fn csrf(&self) -> &str {
        &self.csrf
    }
}

pub(super) fn check_csrf(app: &App, given: &str) -> Result<(), Refusal> {
    use subtle::ConstantTimeEq as _;
    if bool::from(given.as_bytes().ct_eq(app.csrf.as_bytes())) {
        Ok(())
    } else {
        Err(refuse(
            app,
            StatusCode::FORBIDDEN,
            "refused: the form's CSRF token is missing or wrong; reload the page and try again",
        ))
    }
}

/// A redirect (303) to `path` (which ends in `?` or `&`) with a notice to show there.
pub(super) fn see(app: &App, path: &str, notice: &str) -> Response {
    let notice = serde_urlencoded::to_string([("notice", notice)]).unwrap_or_default();
    Redirect::to(&format!("{}{path}{notice}", app.config.base_path)).into_response()
}

pub(super) async fn job_action(
    State(app): State<Arc<App>>,
    Extension(who): Extension<Who>,
    Path((id, action)): Path<(i64, String)>,
    Form(form): Form<ActionForm>,
) -> Page {
    check_csrf(&app, &form.csrf)?;
    let by_id = JobFilter {
        id: Some(id),
        ..JobFilter::default()
    };
    let verb = action.clone();
    let done = db(&app, move |db| {
        Ok(match verb.as_str() {
            "retry" => Some(db.retry_jobs(&by_id)?),
            "delete" => Some(db.delete_jobs(&by_id)?),
            "unlock" => Some(db.unlock_jobs(&by_id)?),
            "run" => Some(db.run_jobs_now(&by_id)?),
            "cancel" => Some(match db.cancel(id)? {
                Cancel::NotFound => 0,
                _ => 1,
            }),
            _ => None,
        })
    })
    .await?;
    let Some(n) = done else {
        return Err(refuse(
            &app,
            StatusCode::NOT_FOUND,
            &format!("no action `{action}`; a job offers retry, delete, unlock, run and cancel"),
        ));
    };
    tracing::info!(target: "dj::web", "{} did {action} on job {id} ({n} changed)", who.0);
    let notice = if n == 0 {
        format!("{action}: job {id} was not in a state this applies to")
    } else {
        format!("{action}: done on job {id}")
    };
    if action == "delete" && n > 0 {
        return Ok(see(&app, "/jobs?", &notice));
    }
    Ok(see(&app, &format!("/jobs/{id}?"), &notice))
}

#[derive(Debug, Deserialize)]
pub(super) struct BulkForm {
    #[serde(default)]
    csrf: String,
    action: String,
    #[serde(default)]
    confirm: String,
    #[serde(flatten)]
    filter: FilterQuery,
}

pub(super) async fn bulk(
    State(app): State<Arc<App>>,
    Extension(who): Extension<Who>,
    Form(form): Form<BulkForm>,
) -> Page {
    check_csrf(&app, &form.csrf)?;
    let selection = form.filter.filter(&app)?;
    if !["retry", "run", "unlock", "delete"].contains(&form.action.as_str()) {
        return Err(refuse(
            &app,
            StatusCode::BAD_REQUEST,
            &format!(
                "no bulk action `{}`; use retry, run, unlock or delete",
                form.action
            ),
        ));
    }
    let size = app.config.search_window;
    if form.confirm != "yes" {
        let (count, window) = db(&app, move |db| {
            let (filter, window) = selection.windowed(db, size)?;
            Ok((db.count_jobs(&filter)?, window))
        })
        .await?;
        let ctx = context! {
            title => "confirm",
            action => form.action,
            count => count,
            described => form.filter.described(window),
            filter => form.filter.pinned(window),
        };
        return render(&app, "confirm.html", ctx);
    }
    let action = form.action.clone();
    let (n, window) = db(&app, move |db| {
        let (filter, window) = selection.windowed(db, size)?;
        let n = match action.as_str() {
            "retry" => db.retry_jobs(&filter),
            "run" => db.run_jobs_now(&filter),
            "unlock" => db.unlock_jobs(&filter),
            _ => db.delete_jobs(&filter),
        }?;
        Ok((n, window))
    })
    .await?;
    let described = form.filter.described(window);
    tracing::info!(
        target: "dj::web",
        "{} did {} on {n} jobs matching {described}",
        who.0,
        form.action
    );
    let back = FilterQuery {
        from: String::new(),
        ..form.filter
    };
    let query = serde_urlencoded::to_string(&back).unwrap_or_default();
    Ok(see(
        &app,
        &format!("/jobs?{query}&"),
        &format!("{}: done on {n} jobs matching {described}", form.action),
    ))
}

pub(super) async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/dj.js"),
    )
        .into_response()
}

pub(super) async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/dj.css"),
    )
        .into_response()
}

pub(super) async fn not_found(State(app): State<Arc<App>>) -> Response {
    error_page(&app, StatusCode::NOT_FOUND, "no such page")
}
