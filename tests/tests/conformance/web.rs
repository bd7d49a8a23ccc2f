//! The dashboard over HTTP, against `worker web` on loopback with a real database: the
//! overview's counts are `stats --json`'s, actions need the CSRF token and the page's origin,
//! `--read-only` refuses them, credentials are checked and required off loopback, output is
//! escaped, filters are bound, and `/metrics` parses as Prometheus' text format.

use std::collections::BTreeMap;
use std::process::Child;
use std::time::Duration;

use dj::{Job, JobFilter};
use dj_tests::jobs::{AlwaysFails, Record};
use dj_tests::support::{Backend, TestDb};

use crate::operations::wait_until;
use crate::pause::cli;
use crate::processes::{signal, spawn_worker, wait_exit, worker_output};
use crate::Case;

pub const CASES: &[Case] = &[
    (
        "web_overview_counts_are_stats_and_actions_need_csrf_and_origin",
        overview_and_actions,
    ),
    (
        "web_read_only_credentials_and_binding_off_loopback",
        read_only_and_credentials,
    ),
    ("web_escapes_payloads_and_binds_filters", escaping),
    ("web_metrics_parse_and_match_stats", metrics),
    ("web_and_top_show_the_throughput_workers_report", throughput),
    (
        "work_metrics_bind_counts_attempts_by_name_and_outcome",
        process_metrics,
    ),
    (
        "start_metrics_bind_serves_one_endpoint_for_the_pool",
        pool_metrics,
    ),
    ("web_refuses_host_names_it_was_not_given", host_names),
    ("web_bounds_every_query_parameter", bounded_parameters),
    (
        "web_search_reads_the_newest_rows_and_searches_older_on_request",
        search_window,
    ),
];

/// A running `worker web` and its base URL.
pub struct Web {
    child: Child,
    pub url: String,
}

impl Web {
    pub fn start(t: &TestDb, label: &str, args: &[&str]) -> Web {
        let mut all = vec!["web", "--bind", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let child = spawn_worker(t, label, &all);
        let url = announced(t, label, "dashboard at ")
            .trim_end_matches('/')
            .to_owned();
        Web { child, url }
    }
}

impl Drop for Web {
    fn drop(&mut self) {
        signal(&self.child, libc::SIGTERM);
        let status = wait_exit(&mut self.child, Duration::from_secs(20));
        assert!(
            status.success() || std::thread::panicking(),
            "web exits 0: {status}"
        );
    }
}

/// The URL a process printed after `marker` in its log, once it has.
fn announced(t: &TestDb, label: &str, marker: &str) -> String {
    let mut url = String::new();
    let up = wait_until(Duration::from_secs(20), || {
        let out = worker_output(t, label);
        match out.split(marker).nth(1) {
            Some(rest) => {
                url = rest.split_whitespace().next().unwrap_or("").to_owned();
                true
            }
            None => false,
        }
    });
    assert!(up, "{label} prints {marker:?}: {}", worker_output(t, label));
    url
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// The CSRF token from a page's forms.
pub fn csrf(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with the token")
        + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

/// A cell of the overview's queue table: `<tr data-queue="Q">` ... `<td class="STATE">`.
fn cell(html: &str, queue: &str, state: &str) -> i64 {
    let row = html
        .split(&format!("data-queue=\"{queue}\""))
        .nth(1)
        .unwrap_or_else(|| panic!("a row for queue {queue}"));
    let cell = row.split(&format!("class=\"{state}\"")).nth(1).unwrap();
    let text = cell.split('>').nth(2).unwrap().split('<').next().unwrap();
    text.trim().parse().unwrap()
}

fn failing(t: &TestDb, log: &str, queue: &str, n: usize) {
    for i in 0..n {
        AlwaysFails {
            log: log.into(),
            key: format!("{queue}{i}"),
        }
        .delay()
        .queue(queue)
        .enqueue(&t.db)
        .unwrap();
    }
    let report = dj::Worker::new(t.db.clone())
        .max_attempts(1)
        .destroy_failed_jobs(false)
        .work_off(100)
        .unwrap();
    assert_eq!(report.failed as usize, n);
}

/// Enqueues `n` Record jobs keyed `PREFIX0..`, in `queue`.
fn records(t: &TestDb, log: &str, queue: Option<&str>, prefix: &str, n: usize) {
    for i in 0..n {
        let job = Record {
            log: log.into(),
            key: format!("{prefix}{i}"),
        }
        .delay();
        match queue {
            Some(queue) => job.queue(queue),
            None => job,
        }
        .enqueue(&t.db)
        .unwrap();
    }
}

fn overview_and_actions(backend: Backend) {
    let t = TestDb::new(backend, "web_actions");
    let log = t.log();
    failing(&t, &log.path(), "mail", 3);
    failing(&t, &log.path(), "feeds", 2);
    records(&t, &log.path(), Some("mail"), "r", 4);
    let web = Web::start(&t, "web", &[]);
    let http = client();
    let page = http.get(format!("{}/", web.url)).send().unwrap();
    assert_eq!(page.status(), 200);
    for (name, value) in [("x-frame-options", "DENY"), ("cache-control", "no-store")] {
        assert_eq!(page.headers()[name], value);
    }
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    let html = page.text().unwrap();
    let stats: serde_json::Value = serde_json::from_str(&cli(&t, &["stats", "--json"])).unwrap();
    for q in stats["queues"].as_array().unwrap() {
        let queue = q["queue"].as_str().unwrap();
        for state in ["ready", "scheduled", "running", "failed"] {
            assert_eq!(
                cell(&html, queue, state),
                q[state].as_i64().unwrap(),
                "{queue} {state}: the page shows what stats --json prints"
            );
        }
    }

    // Retry all failed jobs of queue mail: a confirmation with the count, then done.
    let list = http
        .get(format!("{}/jobs?state=failed&queue=mail", web.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(list.contains("<span id=\"total\">3</span>"), "{list}");
    let token = csrf(&list);
    let origin = web.url.clone();
    let form = |extra: &[(&str, &str)]| {
        let mut f = vec![("action", "retry"), ("state", "failed"), ("queue", "mail")];
        f.extend_from_slice(extra);
        f.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    // No token, a wrong token, and the right token from another origin: refused.
    for (extra, from) in [
        (vec![], origin.as_str()),
        (vec![("csrf", "forged")], origin.as_str()),
        (vec![("csrf", token.as_str())], "http://evil.example"),
    ] {
        let refused = http
            .post(format!("{}/bulk", web.url))
            .header("Origin", from)
            .form(&form(&extra))
            .send()
            .unwrap();
        assert_eq!(refused.status(), 403, "{extra:?} from {from}");
    }
    let confirm = http
        .post(format!("{}/bulk", web.url))
        .header("Origin", &origin)
        .form(&form(&[("csrf", &token)]))
        .send()
        .unwrap();
    assert_eq!(confirm.status(), 200);
    assert!(confirm.text().unwrap().contains("retry 3 jobs?"));
    assert_eq!(
        t.db.count_jobs(&JobFilter {
            state: Some(dj::JobState::Failed),
            ..JobFilter::default()
        })
        .unwrap(),
        5,
        "nothing changes before the confirmation"
    );
    let done = http
        .post(format!("{}/bulk", web.url))
        .header("Origin", &origin)
        .form(&form(&[("csrf", &token), ("confirm", "yes")]))
        .send()
        .unwrap();
    assert_eq!(done.status(), 303);
    let failed = |queue: &str| {
        t.db.count_jobs(&JobFilter {
            state: Some(dj::JobState::Failed),
            queue: Some(queue.into()),
            ..JobFilter::default()
        })
        .unwrap()
    };
    assert_eq!((failed("mail"), failed("feeds")), (0, 2));
    assert_eq!(
        t.db.count_jobs(&JobFilter {
            state: Some(dj::JobState::Ready),
            queue: Some("mail".into()),
            ..JobFilter::default()
        })
        .unwrap(),
        7
    );

    // One job: its page shows its last_error; delete it.
    let id =
        t.db.jobs(&JobFilter {
            queue: Some("feeds".into()),
            ..JobFilter::default()
        })
        .unwrap()[0]
            .id;
    let page = http
        .get(format!("{}/jobs/{id}", web.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(page.contains("could not fetch feeds0"), "{page}");
    let deleted = http
        .post(format!("{}/jobs/{id}/delete", web.url))
        .header("Referer", format!("{}/jobs/{id}", web.url))
        .form(&[("csrf", token.as_str())])
        .send()
        .unwrap();
    assert_eq!(deleted.status(), 303);
    assert!(t.db.job(id).unwrap().is_none());
}

fn read_only_and_credentials(backend: Backend) {
    let t = TestDb::new(backend, "web_read_only");
    let log = t.log();
    failing(&t, &log.path(), "mail", 1);
    let http = client();
    {
        let web = Web::start(&t, "ro", &["--read-only"]);
        let page = http
            .get(format!("{}/jobs?state=failed", web.url))
            .send()
            .unwrap();
        let html = page.text().unwrap();
        assert!(html.contains("id=\"read-only\""));
        assert!(!html.contains("name=\"csrf\""), "no action form at all");
        let overview = http.get(format!("{}/", web.url)).send().unwrap();
        let overview = overview.text().unwrap();
        assert!(
            overview.contains("tr data-queue=\"mail\"") && !overview.contains("name=\"csrf\""),
            "no queue control either"
        );
        let id = t.db.jobs(&JobFilter::default()).unwrap()[0].id;
        let paths = [
            format!("/jobs/{id}/retry"),
            "/bulk".to_owned(),
            "/queues/pause".to_owned(),
            "/queues/rate".to_owned(),
        ];
        for path in paths {
            let refused = http
                .post(format!("{}{path}", web.url))
                .header("Origin", &web.url)
                .form(&[
                    ("action", "retry"),
                    ("confirm", "yes"),
                    ("queue", "mail"),
                    ("rate", "1/s"),
                ])
                .send()
                .unwrap();
            assert_eq!(refused.status(), 403, "{path}");
            assert!(refused.text().unwrap().contains("read-only"));
        }
        assert!(t.db.job(id).unwrap().unwrap().failed_at.is_some());
        assert!(t.db.paused_queues().unwrap().is_empty());
        assert!(t.db.rate_limits().unwrap().is_empty());
    }
    {
        let web = Web::start(&t, "auth", &["--auth", "admin:s3cret"]);
        let url = format!("{}/", web.url);
        let none = http.get(&url).send().unwrap();
        assert_eq!(none.status(), 401);
        assert!(none.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic"));
        let wrong = http
            .get(&url)
            .basic_auth("admin", Some("guess"))
            .send()
            .unwrap();
        assert_eq!(wrong.status(), 401);
        let right = http
            .get(&url)
            .basic_auth("admin", Some("s3cret"))
            .send()
            .unwrap();
        assert_eq!(right.status(), 200);
    }
    // Off loopback without credentials: refused at start, with the fix in the message.
    let out = std::process::Command::new(crate::processes::WORKER)
        .args(["web", "--bind", "0.0.0.0:0"])
        .env("DATABASE_URL", &t.url)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("without credentials") && err.contains("--auth"),
        "{err}"
    );
}

fn escaping(backend: Backend) {
    let t = TestDb::new(backend, "web_escaping");
    let log = t.log();
    let script = "<script>document.title='pwned'</script>";
    let id = Record {
        log: log.path(),
        key: script.into(),
    }
    .delay()
    .enqueue(&t.db)
    .unwrap();
    let web = Web::start(&t, "web", &[]);
    let http = client();
    let page = http
        .get(format!("{}/jobs/{id}", web.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(!page.contains("<script>document"), "escaped: {page}");
    assert!(page.contains("&lt;script&gt;document.title="), "{page}");
    // A hostile filter is a value, not SQL: the table is still there and the page lists nothing.
    let hostile = "x'; DROP TABLE delayed_jobs; --";
    let list = http
        .get(format!("{}/jobs", web.url))
        .query(&[("queue", hostile), ("q", "' OR 1=1 --")])
        .send()
        .unwrap();
    assert_eq!(list.status(), 200);
    assert!(list.text().unwrap().contains("<span id=\"total\">0</span>"));
    assert!(t.db.job(id).unwrap().is_some());
    let bad = http
        .get(format!("{}/jobs?state=gone", web.url))
        .send()
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad
        .text()
        .unwrap()
        .contains("expected one of: ready, scheduled, running, failed"));
}

/// A strict reader of the text exposition format: `# HELP`/`# TYPE` lines, then samples
/// `name{label="value",...} number` of a declared metric. Returns samples by name and labels.
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment: {line}");
        let (series, value) = line.rsplit_once(' ').expect("a sample: series value");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("a number: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        let family = ["_bucket", "_sum", "_count", "_total"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| types.contains_key(*f)))
            .unwrap_or(name);
        assert!(
            types.contains_key(family),
            "sample before its # TYPE: {line}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
                for pair in labels[1..labels.len() - 1].split("\",") {
                    let (key, value) = pair.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
                    assert!(
                        key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                        "{line}"
                    );
                    assert!(!value.trim_end_matches('"').contains('\n'), "{line}");
                }
            }
        }
        samples.insert(series.to_owned(), value);
    }
    samples
}

fn metrics(backend: Backend) {
    let t = TestDb::new(backend, "web_metrics");
    let log = t.log();
    failing(&t, &log.path(), "mail", 2);
    records(&t, &log.path(), Some("mail"), "", 3);
    let web = Web::start(&t, "web", &[]);
    let response = client().get(format!("{}/metrics", web.url)).send().unwrap();
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let samples = parse_metrics(&response.text().unwrap());
    let stats: serde_json::Value = serde_json::from_str(&cli(&t, &["stats", "--json"])).unwrap();
    let mail = &stats["queues"][0];
    assert_eq!(mail["queue"], "mail");
    for state in ["ready", "failed"] {
        assert_eq!(
            samples[&format!("dj_jobs{{queue=\"mail\",state=\"{state}\"}}")],
            mail[state].as_f64().unwrap()
        );
    }
    assert_eq!(samples["dj_jobs{queue=\"mail\",state=\"ready\"}"], 3.0);
    assert!(samples.contains_key("dj_workers_alive"));
}

fn throughput(backend: Backend) {
    let t = TestDb::new(backend, "web_throughput");
    let log = t.log();
    records(&t, &log.path(), None, "", 7);
    // 3 failing for good: their attempts count as failed.
    failing(&t, &log.path(), "mail", 3);
    // The work-off in `failing` ran the 7 as well; its worker reported at exit.
    let minutes = t.db.throughput(60).unwrap();
    let (ok, failed) = minutes
        .iter()
        .fold((0, 0), |(s, f), (_, ds, df)| (s + ds, f + df));
    assert_eq!((ok, failed), (7, 3), "{minutes:?}");
    let top = cli(&t, &["top", "--once"]);
    assert!(
        top.contains("last hour: 7 succeeded, 3 failed attempts"),
        "{top}"
    );
    assert!(top.contains("QUEUE") && top.contains("mail"), "{top}");
    let web = Web::start(&t, "web", &[]);
    let html = client()
        .get(format!("{}/", web.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        html.contains("<span id=\"hour-succeeded\">7</span>"),
        "{html}"
    );
    assert!(html.contains("<span id=\"hour-failed\">3</span>"), "{html}");
}

fn process_metrics(backend: Backend) {
    let t = TestDb::new(backend, "work_metrics");
    let log = t.log();
    records(&t, &log.path(), None, "", 7);
    for i in 0..3 {
        AlwaysFails {
            log: log.path(),
            key: format!("f{i}"),
        }
        .delay()
        .enqueue(&t.db)
        .unwrap();
    }
    // One more, scheduled: the ready gauge is checked against stats --json below.
    Record {
        log: log.path(),
        key: "later".into(),
    }
    .delay()
    .run_in(Duration::from_secs(3600))
    .enqueue(&t.db)
    .unwrap();
    let mut worker = spawn_worker(
        &t,
        "w",
        &[
            "work",
            "--metrics-bind",
            "127.0.0.1:0",
            "--max-attempts",
            "1",
            "--keep-failed",
            "--sleep-delay",
            "0.2",
        ],
    );
    let url = announced(&t, "w", "Metrics at ");
    let failed = JobFilter {
        state: Some(dj::JobState::Failed),
        ..JobFilter::default()
    };
    assert!(
        // Left: the 3 failed (kept, once their failures are written) and the scheduled one.
        wait_until(Duration::from_secs(30), || {
            t.db.count_jobs(&JobFilter::default()).unwrap() == 4
                && t.db.count_jobs(&failed).unwrap() == 3
        }),
        "{}",
        worker_output(&t, "w")
    );
    let samples = parse_metrics(&client().get(&url).send().unwrap().text().unwrap());
    signal(&worker, libc::SIGTERM);
    assert!(wait_exit(&mut worker, Duration::from_secs(30)).success());
    let at = |series: &str| {
        *samples
            .get(series)
            .unwrap_or_else(|| panic!("{series} in {samples:#?}"))
    };
    assert_eq!(
        at("dj_job_attempts_total{name=\"Record\",outcome=\"succeeded\"}"),
        7.0
    );
    assert_eq!(
        at("dj_job_attempts_total{name=\"AlwaysFails\",outcome=\"failed\"}"),
        3.0
    );
    assert_eq!(at("dj_job_duration_seconds_count{name=\"Record\"}"), 7.0);
    assert_eq!(
        at("dj_job_duration_seconds_bucket{name=\"Record\",le=\"+Inf\"}"),
        7.0
    );
    assert!(at("dj_claim_batch_size_count") >= 1.0);
    assert_eq!(
        at("dj_claim_batch_size_sum"),
        10.0,
        "10 jobs claimed in all"
    );
    assert_eq!(at("dj_workers_alive"), 1.0);
    let stats: serde_json::Value = serde_json::from_str(&cli(&t, &["stats", "--json"])).unwrap();
    let queue = &stats["queues"][0];
    assert_eq!(
        at("dj_jobs{queue=\"\",state=\"scheduled\"}"),
        queue["scheduled"].as_f64().unwrap()
    );
    assert_eq!(
        at("dj_jobs{queue=\"\",state=\"ready\"}"),
        queue["ready"].as_f64().unwrap()
    );
    assert_eq!(at("dj_jobs{queue=\"\",state=\"failed\"}"), 3.0);
}

fn pool_metrics(backend: Backend) {
    let t = TestDb::new(backend, "pool_metrics");
    let log = t.log();
    let mut pool = spawn_worker(
        &t,
        "pool",
        &[
            "start",
            "-n",
            "2",
            "--metrics-bind",
            "127.0.0.1:0",
            "--sleep-delay",
            "0.2",
        ],
    );
    let url = announced(&t, "pool", "Metrics of the pool's workers at ");
    assert!(
        wait_until(Duration::from_secs(20), || t.db.workers().unwrap().len()
            == 2),
        "{}",
        worker_output(&t, "pool")
    );
    dj::enqueue_many(
        &t.db,
        (0..20).map(|i| Record {
            log: log.path(),
            key: format!("{i}"),
        }),
    )
    .unwrap();
    let http = client();
    let mut samples = BTreeMap::new();
    let counted = wait_until(Duration::from_secs(30), || {
        samples = parse_metrics(&http.get(&url).send().unwrap().text().unwrap());
        samples.get("dj_job_attempts_total{name=\"Record\",outcome=\"succeeded\"}") == Some(&20.0)
    });
    signal(&pool, libc::SIGTERM);
    assert!(wait_exit(&mut pool, Duration::from_secs(60)).success());
    assert!(
        counted,
        "both workers' attempts in one endpoint: {samples:#?}"
    );
    assert_eq!(
        samples["dj_job_duration_seconds_count{name=\"Record\"}"],
        20.0
    );
    assert_eq!(samples["dj_workers_alive"], 2.0, "a gauge is not summed");
}

/// The port of a `http://127.0.0.1:PORT` URL.
fn port_of(url: &str) -> &str {
    url.rsplit(':').next().unwrap()
}

fn host_names(backend: Backend) {
    let t = TestDb::new(backend, "web_hosts");
    let log = t.log();
    failing(&t, &log.path(), "mail", 1);
    let id = t.db.jobs(&JobFilter::default()).unwrap()[0].id;
    let still_failed = || t.db.job(id).unwrap().unwrap().failed_at.is_some();
    let http = client();
    let web = Web::start(&t, "web", &[]);
    let port = port_of(&web.url).to_owned();
    let token = csrf(
        &http
            .get(format!("{}/jobs", web.url))
            .send()
            .unwrap()
            .text()
            .unwrap(),
    );
    // A page of a site whose name now resolves to 127.0.0.1: its requests name that site.
    let evil = format!("evil.example:{port}");
    let refused = |response: reqwest::blocking::Response, what: &str| {
        assert_eq!(response.status(), 421, "{what}");
        let body = response.text().unwrap();
        assert!(body.contains("--allow-host"), "{what}: {body}");
        assert!(
            !body.contains(&token),
            "{what}: the CSRF token leaked: {body}"
        );
    };
    let job_page = format!("/jobs/{id}");
    for path in [
        "/",
        "/overview",
        "/jobs",
        "/jobs?q=mail&fragment=1",
        job_page.as_str(),
        "/metrics",
        "/assets/dj.js",
        "/no-such-page",
    ] {
        let response = http
            .get(format!("{}{path}", web.url))
            .header("Host", &evil)
            .send()
            .unwrap();
        refused(response, path);
    }
    let bulk = [
        ("csrf", token.as_str()),
        ("action", "retry"),
        ("state", "failed"),
        ("confirm", "yes"),
    ];
    for (path, form) in [
        (format!("/jobs/{id}/retry"), &bulk[..1]),
        ("/bulk".to_owned(), &bulk[..]),
    ] {
        let response = http
            .post(format!("{}{path}", web.url))
            .header("Host", &evil)
            .header("Origin", format!("http://{evil}"))
            .form(form)
            .send()
            .unwrap();
        refused(response, &path);
    }
    assert!(still_failed(), "no action ran");
    // The names of this machine: localhost and IP literals, on any port.
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        "localhost".to_owned(),
        "LOCALHOST:8080".to_owned(),
    ] {
        let response = http
            .get(format!("{}/jobs", web.url))
            .header("Host", &host)
            .send()
            .unwrap();
        assert_eq!(response.status(), 200, "{host}");
        assert!(response.text().unwrap().contains(&token), "{host}");
    }
    let local = format!("localhost:{port}");
    let retried = http
        .post(format!("{}/jobs/{id}/retry", web.url))
        .header("Host", &local)
        .header("Origin", format!("http://{local}"))
        .form(&bulk[..1])
        .send()
        .unwrap();
    assert_eq!(retried.status(), 303);
    assert!(!still_failed(), "retried through http://localhost");
    drop(web);

    // --allow-host admits that name (on any port) and no other; the Host is checked before
    // the credentials, so a forged name gets no 401 challenge either.
    let web = Web::start(
        &t,
        "allowed",
        &["--allow-host", "dash.internal", "--auth", "admin:s3cret"],
    );
    let port = port_of(&web.url).to_owned();
    let get = |host: &str, auth: bool| {
        let request = http.get(format!("{}/", web.url)).header("Host", host);
        let request = if auth {
            request.basic_auth("admin", Some("s3cret"))
        } else {
            request
        };
        request.send().unwrap().status().as_u16()
    };
    for host in [
        format!("dash.internal:{port}"),
        "dash.internal".to_owned(),
        "Dash.Internal:443".to_owned(),
        format!("localhost:{port}"),
    ] {
        assert_eq!(get(&host, true), 200, "{host}");
        assert_eq!(get(&host, false), 401, "{host}");
    }
    for host in [
        format!("evil.example:{port}"),
        format!("dash.internal.evil.example:{port}"),
        format!("internal:{port}"),
    ] {
        assert_eq!(get(&host, true), 421, "{host}");
        assert_eq!(get(&host, false), 421, "{host}: refused before credentials");
    }
}

fn bounded_parameters(backend: Backend) {
    let t = TestDb::new(backend, "web_bounds");
    let log = t.log();
    records(&t, &log.path(), Some("mail"), "r", 3);
    let id = t.db.jobs(&JobFilter::default()).unwrap()[0].id;
    let web = Web::start(&t, "web", &[]);
    let http = client();
    let (max, min) = (i64::MAX.to_string(), i64::MIN.to_string());
    let long = "x".repeat(10_000);
    for (path, status) in [
        // Pages past the end show the last one; before the start, the first.
        (format!("/jobs?page={max}"), 200),
        (format!("/jobs?page={max}&fragment=1&q=Record"), 200),
        (format!("/jobs?page={min}"), 200),
        ("/jobs?page=0".to_owned(), 200),
        ("/jobs?page=99999999999999999999".to_owned(), 400),
        ("/jobs?page=abc".to_owned(), 400),
        ("/jobs?page=1e9".to_owned(), 400),
        (format!("/jobs?q=Record&before={max}"), 200),
        (format!("/jobs?q=Record&before={min}"), 400),
        ("/jobs?q=Record&before=x".to_owned(), 400),
        (format!("/jobs?q=Record&from={min}&before={max}"), 200),
        ("/jobs?q=Record&from=1.5".to_owned(), 400),
        ("/jobs?q=Record&all=2".to_owned(), 400),
        ("/jobs?sort=sideways".to_owned(), 400),
        ("/jobs?state=gone".to_owned(), 400),
        (format!("/jobs?q={long}"), 400),
        (format!("/jobs?queue={long}"), 400),
        (format!("/jobs?name={long}"), 400),
        (format!("/jobs/{max}"), 404),
        (format!("/jobs/{min}"), 404),
        ("/jobs/99999999999999999999".to_owned(), 400),
        ("/jobs/abc".to_owned(), 400),
    ] {
        let response = http
            .get(format!("{}{path}", web.url))
            .send()
            .unwrap_or_else(|e| panic!("{path}: an answer, not {e}"));
        let shown = &path[..path.len().min(80)];
        assert_eq!(response.status(), status, "{shown}");
        let body = response.text().unwrap();
        if status == 200 {
            assert!(
                body.contains("<span id=\"total\">3</span>"),
                "{shown}: {body}"
            );
            assert!(
                body.contains(&format!("data-id=\"{id}\"")),
                "{shown}: the rows"
            );
        } else {
            assert!(body.len() < 20_000, "{shown}: a short message");
        }
    }
    let token = csrf(
        &http
            .get(format!("{}/jobs", web.url))
            .send()
            .unwrap()
            .text()
            .unwrap(),
    );
    for (path, form, status) in [
        (
            "/bulk".to_owned(),
            vec![("action", "delete"), ("q", long.as_str())],
            400,
        ),
        (
            "/bulk".to_owned(),
            vec![("action", "delete"), ("q", "Record"), ("before", &min)],
            400,
        ),
        (format!("/jobs/{max}/retry"), vec![], 303),
        ("/jobs/99999999999999999999/retry".to_owned(), vec![], 400),
    ] {
        let mut form = form;
        form.push(("csrf", &token));
        let response = http
            .post(format!("{}{path}", web.url))
            .header("Origin", &web.url)
            .form(&form)
            .send()
            .unwrap_or_else(|e| panic!("{path}: an answer, not {e}"));
        assert_eq!(response.status(), status, "POST {path}");
    }
    assert_eq!(
        t.db.count_jobs(&JobFilter::default()).unwrap(),
        3,
        "nothing deleted"
    );
    let overview = http.get(format!("{}/", web.url)).send().unwrap();
    assert_eq!(overview.status(), 200, "still serving");
    // Dropping `web` checks that it exits 0 on TERM: it did not crash.
}

fn search_window(backend: Backend) {
    let t = TestDb::new(backend, "web_search");
    let log = t.log();
    // 25 rows: a needle first, another at the lower edge of the newest 10.
    records(&t, &log.path(), None, "needle-old", 1);
    records(&t, &log.path(), None, "hay", 14);
    records(&t, &log.path(), None, "needle-new", 1);
    records(&t, &log.path(), None, "hay", 9);
    let ids: Vec<i64> =
        t.db.jobs(&JobFilter::default())
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
    let web = Web::start(&t, "web", &["--search-window", "10"]);
    let http = client();
    let get = |path: &str| {
        let response = http.get(format!("{}{path}", web.url)).send().unwrap();
        assert_eq!(response.status(), 200, "{path}");
        response.text().unwrap()
    };
    let listed = |html: &str| -> Vec<i64> {
        html.split("<tr data-id=\"")
            .skip(1)
            .map(|s| s.split('"').next().unwrap().parse().unwrap())
            .collect()
    };
    let older = |html: &str| -> Option<String> {
        let link = html.split("id=\"search-older\" href=\"").nth(1)?;
        Some(link.split('"').next().unwrap().replace("&amp;", "&"))
    };
    // The first search reads the newest 10 rows only: the new needle, not the old one.
    let html = get("/jobs?q=NEEDLE");
    assert_eq!(listed(&html), [ids[15]], "{html}");
    assert!(html.contains("<span id=\"total\">1</span>"), "{html}");
    assert!(html.contains("the newest 10 rows"), "{html}");
    // "Search older" goes back 10 rows at a time, to the oldest.
    let link = older(&html).expect("a link to search older rows");
    assert!(
        link.contains(&format!("before={}", ids[15])),
        "the window before the newest 10: {link}"
    );
    let html = get(&link);
    assert_eq!(
        listed(&html),
        Vec::<i64>::new(),
        "ids {}..{}",
        ids[5],
        ids[14]
    );
    let html = get(&older(&html).expect("a third window"));
    assert_eq!(
        listed(&html),
        [ids[0]],
        "the old needle, in the last window"
    );
    assert!(older(&html).is_none(), "no row is older: {html}");
    // A bulk action under a search acts on the rows its confirmation counted, though newer
    // rows push the newest window up meanwhile.
    let token = csrf(&html);
    let confirm = http
        .post(format!("{}/bulk", web.url))
        .header("Origin", &web.url)
        .form(&[
            ("csrf", token.as_str()),
            ("action", "delete"),
            ("q", "needle"),
        ])
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(confirm.contains("delete 1 job?"), "{confirm}");
    let pin = ids[15].to_string();
    assert!(
        confirm.contains(&format!("name=\"from\" value=\"{pin}\"")),
        "{confirm}"
    );
    records(&t, &log.path(), None, "late-hay", 3);
    let done = http
        .post(format!("{}/bulk", web.url))
        .header("Origin", &web.url)
        .form(&[
            ("csrf", token.as_str()),
            ("action", "delete"),
            ("confirm", "yes"),
            ("q", "needle"),
            ("from", pin.as_str()),
        ])
        .send()
        .unwrap();
    assert_eq!(done.status(), 303);
    assert!(t.db.job(ids[15]).unwrap().is_none(), "the counted needle");
    assert!(t.db.job(ids[0]).unwrap().is_some(), "not the old one");
    // The whole table on request.
    let html = get("/jobs?q=needle&all=1");
    assert_eq!(listed(&html), [ids[0]]);
    assert!(older(&html).is_none());
    // No search, no window: every row.
    assert!(get("/jobs").contains("<span id=\"total\">27</span>"));
}
