//! The dashboard (feature `web`): `worker web`, or [`router`] mounted in an app's own axum
//! server. Pages over the same [`Db`] as the CLI, with the CLI's states (`store/filter.rs`),
//! so a count on the page is the count `stats --json` prints; Prometheus `/metrics`.
//!
//! Safe by default: [`serve`] binds loopback unless told otherwise and refuses any other
//! address without credentials; a request naming a `Host` the dashboard was not given is
//! refused before anything else (DNS rebinding, [`Hosts`]); `read_only` serves no action;
//! every action is a POST that
//! must carry the process's CSRF token and come from the page's own origin; templates escape
//! everything (minijinja, auto-escaping `.html`); responses carry a content security policy
//! (scripts and styles from this server only, no inline script), `X-Frame-Options: DENY` and
//! `Cache-Control: no-store`; every filter is a bound parameter. Actions are logged with who
//! made them.

mod metrics;
mod pages;
mod process;
mod queues;
mod view;
mod workflows;

pub use process::{merge_exposition, ProcessMetrics};

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use subtle::ConstantTimeEq as _;

use crate::db::Db;
use crate::error::{Error, Result};

/// Who may use the dashboard.
#[derive(Clone)]
pub enum Credentials {
    /// HTTP Basic: this user and password (`--auth user:password`).
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// A token (`DJ_WEB_TOKEN`): as `Authorization: Bearer TOKEN`, or as the password of
    /// HTTP Basic with any user name (what a browser sends).
    Token(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { user, .. } => write!(f, "Basic({user}, <hidden>)"),
            Credentials::Token(_) => f.write_str("Token(<hidden>)"),
        }
    }
}

impl Credentials {
    /// `user:password`, as `--auth` takes it.
    pub fn parse(text: &str) -> Result<Credentials> {
        match text.split_once(':') {
            Some((user, password)) if !user.is_empty() && !password.is_empty() => {
                Ok(Credentials::Basic {
                    user: user.to_owned(),
                    password: password.to_owned(),
                })
            }
            _ => Err(Error::Invalid(
                "--auth takes USER:PASSWORD, both non-empty, e.g. --auth admin:s3cret".into(),
            )),
        }
    }

    /// The user an `Authorization` header proves, if it matches.
    fn check(&self, headers: &HeaderMap) -> Option<String> {
        let given = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let same = |a: &str, b: &str| bool::from(a.as_bytes().ct_eq(b.as_bytes()));
        if let Some(token) = given.strip_prefix("Bearer ") {
            return match self {
                Credentials::Token(expected) if same(token, expected) => Some("token".into()),
                _ => None,
            };
        }
        let encoded = given.strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, password) = decoded.split_once(':')?;
        let ok = match self {
            Credentials::Basic {
                user: u,
                password: p,
            } => same(user, u) & same(password, p),
            Credentials::Token(token) => same(password, token),
        };
        ok.then(|| user.to_owned())
    }
}

/// The `Host` names the dashboard answers.
///
/// A page on any site can make a browser send requests to `127.0.0.1` by having its own name
/// resolve there (DNS rebinding); its requests still name that site in `Host`, and the
/// browser treats our answers as that site's, readable by its scripts (payloads, the CSRF
/// token). So a `Host` the dashboard was not given is refused, `421 Misdirected Request`,
/// before credentials, CSRF or any page.
#[derive(Debug, Clone)]
pub enum Hosts {
    /// `localhost`, any IP address (`127.0.0.1`, `[::1]`: an address cannot be rebound) and
    /// these names, on any port, in any case; every other `Host` is refused. The default, with
    /// no name: what `worker web` serves, `--allow-host NAME` adding names. A router mounted
    /// in an app keeps this rule too: list the names the app is served under.
    Allow(Vec<String>),
    /// Any `Host`: for a router mounted behind a server or proxy that already refuses names
    /// it does not serve.
    Any,
}

impl Default for Hosts {
    fn default() -> Hosts {
        Hosts::Allow(Vec::new())
    }
}

impl Hosts {
    /// Whether a request naming `host` (a `Host` header's value) is answered.
    fn admit(&self, host: &str) -> bool {
        let Hosts::Allow(names) = self else {
            return true;
        };
        let Some(name) = host_name(host) else {
            return false;
        };
        name == "localhost"
            || name.starts_with('[')
            || name.parse::<std::net::Ipv4Addr>().is_ok()
            || names.iter().any(|n| host_name(n).as_deref() == Some(&name))
    }
}

/// The name in a `Host` value (`name`, `name:port`, `[v6]` or `[v6]:port`), lowercase and
/// without a trailing dot; `None` when the value is none of these.
fn host_name(host: &str) -> Option<String> {
    let (name, rest) = match host.strip_prefix('[') {
        Some(v6) => {
            let end = v6.find(']')?;
            v6[..end].parse::<std::net::Ipv6Addr>().ok()?;
            host.split_at(end + 2)
        }
        None => host.split_at(host.find(':').unwrap_or(host.len())),
    };
    let port_ok = rest.is_empty()
        || rest.strip_prefix(':').is_some_and(|port| {
            (1..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit())
        });
    let name = name.strip_suffix('.').unwrap_or(name);
    (port_ok && !name.is_empty()).then(|| name.to_ascii_lowercase())
}

/// A name `--allow-host` takes: a host name (or address), no port.
pub(crate) fn parse_allowed_host(text: &str) -> std::result::Result<String, String> {
    let valid = !text.contains(':')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_');
    match host_name(text) {
        Some(name) if valid => Ok(name),
        _ => Err(format!(
            "`{text}` is not a host name; --allow-host takes a name without scheme or port \
             (any port is admitted), e.g. --allow-host dash.internal"
        )),
    }
}

/// Rows a text search reads at first, the newest; the page offers the next window back
/// ([`WebConfig::search_window`]).
pub const SEARCH_WINDOW: u32 = 100_000;

/// How the dashboard is served.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Serve pages and `/metrics` only: every action is refused.
    pub read_only: bool,
    /// Required of every request when set.
    pub credentials: Option<Credentials>,
    /// The path the router is mounted under in an app (`"/dj"`; default: the root), for the
    /// links in its pages.
    pub base_path: String,
    /// The `Host` names answered (default: `localhost` and IP addresses only).
    pub hosts: Hosts,
    /// A text search reads the newest this many rows (by id), and offers to search the
    /// same number of rows before them, or every row, on request; 0 searches every row at
    /// once. Default [`SEARCH_WINDOW`]: a search's cost stays bounded on a large table.
    pub search_window: u32,
}

impl Default for WebConfig {
    fn default() -> WebConfig {
        WebConfig {
            read_only: false,
            credentials: None,
            base_path: String::new(),
            hosts: Hosts::default(),
            search_window: SEARCH_WINDOW,
        }
    }
}

/// What every request shares.
pub(crate) struct App {
    pub(crate) db: Db,
    pub(crate) config: WebConfig,
    /// The token every form carries and every POST must return: random per process, so a
    /// page of another origin (which cannot read ours) cannot forge an action.
    pub(crate) csrf: String,
    pub(crate) templates: minijinja::Environment<'static>,
}

/// The user a request was authenticated as, for the action log.
#[derive(Clone)]
pub(crate) struct Who(pub(crate) String);

/// The dashboard as an axum router, to mount in an app's own server (with
/// `Router::nest("/dj", ..)` and `base_path: "/dj"`), or to serve with [`serve`].
pub fn router(db: Db, config: WebConfig) -> Result<Router> {
    let app = Arc::new(App {
        db,
        config,
        csrf: random_token()?,
        templates: pages::templates(),
    });
    Ok(Router::new()
        .route("/", get(pages::overview))
        .route("/overview", get(pages::overview_fragment))
        .route("/jobs", get(pages::jobs))
        .route("/jobs/{id}", get(pages::job))
        .route("/jobs/{id}/{action}", post(pages::job_action))
        .route("/bulk", post(pages::bulk))
        .route("/queues/{action}", post(queues::queue_action))
        .route("/workflows", get(workflows::workflows))
        .route("/workflows/{id}", get(workflows::workflow))
        .route("/workflows/{id}/{action}", post(workflows::workflow_action))
        .route("/metrics", get(metrics::metrics))
        .route("/assets/dj.js", get(pages::script))
        .route("/assets/dj.css", get(pages::style))
        .fallback(pages::not_found)
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app))
}

/// Serves the dashboard on `bind` until TERM or INT, calling `ready` with the address it
/// listens on (port 0 picks one). Refuses an address other than loopback without
/// credentials.
pub fn serve(
    db: Db,
    bind: SocketAddr,
    config: WebConfig,
    ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    if !bind.ip().is_loopback() && config.credentials.is_none() {
        return Err(Error::InsecureBind(bind));
    }
    let router = router(db, config)?;
    crate::worker::signals::install_counter();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("dj-web")
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(bind).await?;
        ready(listener.local_addr()?);
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                while crate::worker::signals::received() == 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            })
            .await?;
        Ok(())
    })
}

/// Serves `/metrics` on `bind` from a thread of its own until `stop` is set: this process's
/// counts (`process`) and the table's gauges. What `work --metrics-bind` runs beside its
/// worker. Returns the address it listens on.
pub fn serve_metrics(
    db: Db,
    bind: SocketAddr,
    process: Arc<ProcessMetrics>,
    stop: crate::StopFlag,
) -> Result<SocketAddr> {
    let router = Router::new()
        .route("/metrics", get(metrics::process_metrics))
        .with_state(Arc::new((db, process)));
    serve_in_background(bind, router, Some(stop))
}

/// Serves `/metrics` on `bind` for a pool: each request fetches the `/metrics` of every
/// worker listed in `workers` (loopback ports) and answers with them merged
/// ([`merge_exposition`]), for the life of the process.
pub(crate) fn serve_pool_metrics(
    bind: SocketAddr,
    workers: Arc<std::sync::Mutex<Vec<u16>>>,
) -> Result<SocketAddr> {
    let router = Router::new()
        .route("/metrics", get(metrics::pool_metrics))
        .with_state(workers);
    serve_in_background(bind, router, None)
}

/// Serves `router` on `bind` from a thread with a small runtime of its own, until `stop` is
/// set (or for the life of the process). Returns the address it listens on.
fn serve_in_background(
    bind: SocketAddr,
    router: Router,
    stop: Option<crate::StopFlag>,
) -> Result<SocketAddr> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("dj-metrics")
        .enable_all()
        .build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind(bind))?;
    let addr = listener.local_addr()?;
    std::thread::Builder::new()
        .name("dj-metrics".into())
        .spawn(move || {
            runtime.block_on(async move {
                let _ = axum::serve(listener, router)
                    .with_graceful_shutdown(async move {
                        while !stop.as_ref().is_some_and(crate::StopFlag::is_set) {
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        }
                    })
                    .await;
            });
        })?;
    Ok(addr)
}

fn random_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| Error::Invalid(format!("no randomness for the CSRF token: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Every request: its `Host` first, then credentials (when set), then for a POST the
/// read-only switch and the origin; every response: the security headers.
async fn guard(State(app): State<Arc<App>>, mut request: Request, next: Next) -> Response {
    if let Some(refusal) = misdirected(&app.config.hosts, &request) {
        return secured(refusal);
    }
    let who = match &app.config.credentials {
        None => "anonymous".to_owned(),
        Some(credentials) => match credentials.check(request.headers()) {
            Some(user) => user,
            None => {
                let mut response =
                    (StatusCode::UNAUTHORIZED, "credentials required\n").into_response();
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"dj\", charset=\"UTF-8\""),
                );
                return secured(response);
            }
        },
    };
    if request.method() == Method::POST {
        if app.config.read_only {
            let message = "this dashboard is read-only (--read-only): it serves no action";
            return secured(pages::error_page(&app, StatusCode::FORBIDDEN, message));
        }
        if !same_origin(request.headers()) {
            let message = "refused: the request did not come from this dashboard's own pages \
                           (its Origin or Referer is another site, or missing)";
            return secured(pages::error_page(&app, StatusCode::FORBIDDEN, message));
        }
    }
    request.extensions_mut().insert(Who(who));
    secured(next.run(request).await)
}

/// A request's `Host` (and the authority of an absolute URI, if it has one) must be admitted:
/// otherwise this is its answer, a short plain-text 421 that names the fix and nothing of
/// the dashboard.
fn misdirected(hosts: &Hosts, request: &Request) -> Option<Response> {
    let host = request.headers().get(header::HOST);
    let named = host.map(|h| h.to_str().unwrap_or("(not text)"));
    let authority = request.uri().authority().map(|a| a.as_str());
    let admitted =
        named.is_some_and(|h| hosts.admit(h)) && authority.is_none_or(|a| hosts.admit(a));
    if admitted {
        return None;
    }
    let shown: String = match named {
        Some(h) => format!(
            "`{}`",
            h.chars().take(100).collect::<String>().escape_debug()
        ),
        None => "none".into(),
    };
    let message = format!(
        "refused: this dashboard answers only to localhost, IP addresses and the names it was \
         given with --allow-host NAME (WebConfig::hosts); this request's Host is {shown}. \
         (A page of another site can point its own name at this address: DNS rebinding.)\n"
    );
    Some((StatusCode::MISDIRECTED_REQUEST, message).into_response())
}

/// A POST's `Origin` (or, without one, its `Referer`) names the host it was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let from = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    let Some(from) = from else {
        return false;
    };
    let rest = from
        .strip_prefix("http://")
        .or_else(|| from.strip_prefix("https://"));
    rest.is_some_and(|rest| rest.split('/').next() == Some(host))
}

fn secured(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: header::HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
         img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::CACHE_CONTROL, "no-store");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "same-origin");
    response
}
