//! The dashboard (feature `web`): `worker web`, or [`router`] mounted in an app's own axum
//! server. Pages over the same [`Db`] as the CLI, with the CLI's states (`store/filter.rs`),
//! so a count on the page is the count `stats --json` prints; Prometheus `/metrics`.
//!
//! Safe by default: [`serve`] binds loopback unless told otherwise and refuses any other
//! address without credentials; `read_only` serves no action; every action is a POST that
//! must carry the process's CSRF token and come from the page's own origin; templates escape
//! everything (minijinja, auto-escaping `.html`); responses carry a content security policy
//! (scripts and styles from this server only, no inline script), `X-Frame-Options: DENY` and
//! `Cache-Control: no-store`; every filter is a bound parameter. Actions are logged with who
//! made them.

mod metrics;
mod pages;
mod process;

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

/// How the dashboard is served.
#[derive(Debug, Clone, Default)]
pub struct WebConfig {
    /// Serve pages and `/metrics` only: every action is refused.
    pub read_only: bool,
    /// Required of every request when set.
    pub credentials: Option<Credentials>,
    /// The path the router is mounted under in an app (`"/dj"`; default: the root), for the
    /// links in its pages.
    pub base_path: String,
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

/// Every request: credentials (when set), then for a POST the read-only switch and the
/// origin; every response: the security headers.
async fn guard(State(app): State<Arc<App>>, mut request: Request, next: Next) -> Response {
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
