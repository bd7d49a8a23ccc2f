//! The dashboard in a real browser: headless Chromium driven through chromedriver (Debian's
//! `chromium` and `chromium-driver`, which `.ci/run` installs), against `worker web` with a
//! real database. The tests assert on the DOM; no screenshot is kept.
//!
//! The WebDriver protocol is spoken directly, over the tests' own HTTP client: it is a handful
//! of JSON requests to a local chromedriver, and the WebDriver crates would bring a TLS stack
//! to reach it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dj::{Job, JobFilter, JobState};
use dj_tests::jobs::{AlwaysFails, Record};
use dj_tests::support::{Backend, TestDb};
use serde_json::{json, Value};

use crate::operations::wait_until;
use crate::pause::cli;
use crate::web::{client, Web};
use crate::Case;

pub const CASES: &[Case] = &[(
    "browser_overview_controls_chart_times_dark_mode_retry_all_job_page_and_live_updates",
    browser,
)];

/// chromedriver on a free loopback port, and one headless Chromium session.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::blocking::Client,
    _profile: tempdir::Dir,
}

mod tempdir {
    /// A directory removed when dropped.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    fn start(t: &TestDb) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; .ci/run installs it)");
        let base = format!("http://127.0.0.1:{port}");
        let http = client();
        assert!(
            wait_until(Duration::from_secs(20), || http
                .get(format!("{base}/status"))
                .send()
                .is_ok_and(|r| r.status().is_success())),
            "chromedriver answers"
        );
        let profile = tempdir::Dir(t.dir.join("chromium-profile"));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage",
                         format!("--user-data-dir={}", profile.0.display())],
            },
        }}});
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("a session: {created}"))
            .to_owned();
        Browser {
            driver,
            base,
            session,
            http,
            _profile: profile,
        }
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let request = self.http.request(method.clone(), url);
        let request = if method == reqwest::Method::GET {
            request
        } else {
            request.json(&body)
        };
        let response: Value = request.send().unwrap().json().unwrap();
        if response["value"].get("error").is_some() {
            panic!("WebDriver {path}: {}", response["value"]);
        }
        response["value"].clone()
    }

    fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url }));
    }

    fn find(&self, css: &str) -> String {
        let found = self.call(
            reqwest::Method::POST,
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        found[ELEMENT].as_str().unwrap().to_owned()
    }

    /// The text of the element `css` names, read in one script run (the page replaces its
    /// live tables every 2 s, so an element found first and read after could be gone), once
    /// the element is there (a click's navigation may still be loading): within 10 s.
    fn text(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.call(
                reqwest::Method::POST,
                "/execute/sync",
                json!({
                    "script": "const e = document.querySelector(arguments[0]); return e && e.innerText;",
                    "args": [css],
                }),
            );
            if let Some(text) = text.as_str() {
                return text.trim().to_owned();
            }
            assert!(Instant::now() < deadline, "no element {css} on the page");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            json!({}),
        );
    }

    /// Clicks `css` from a script, in one run: for a button in a table the page replaces
    /// every 2 s, which a click through WebDriver could find and then lose.
    fn click_now(&self, css: &str) {
        let clicked = self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({
                "script": "const e = document.querySelector(arguments[0]); if (e) e.click(); return !!e;",
                "args": [css],
            }),
        );
        assert_eq!(clicked, json!(true), "no element {css} to click");
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        );
    }

    fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
    }

    /// Waits for the text of `css` to satisfy `ok`, as the page updates itself.
    fn wait_text(&self, css: &str, timeout: Duration, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.text(css);
            if ok(&text) || Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn browser(backend: Backend) {
    let t = TestDb::new(backend, "browser");
    let log = t.log();
    for i in 0..3 {
        AlwaysFails {
            log: log.path(),
            key: format!("mail{i}"),
        }
        .delay()
        .queue("mail")
        .enqueue(&t.db)
        .unwrap();
    }
    dj::Worker::new(t.db.clone())
        .max_attempts(1)
        .destroy_failed_jobs(false)
        .work_off(10)
        .unwrap();
    let script =
        "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">";
    let hostile = Record {
        log: log.path(),
        key: script.into(),
    }
    .delay()
    .queue("other")
    .run_in(Duration::from_secs(3600)) // kept out of the work-offs below
    .enqueue(&t.db)
    .unwrap();
    let web = Web::start(&t, "web", &[]);
    let b = Browser::start(&t);

    // The overview shows the counts stats --json prints.
    b.go(&format!("{}/", web.url));
    let stats: Value = serde_json::from_str(&cli(&t, &["stats", "--json"])).unwrap();
    for q in stats["queues"].as_array().unwrap() {
        let queue = q["queue"].as_str().unwrap();
        for state in ["ready", "failed"] {
            let shown = b.text(&format!("tr[data-queue='{queue}'] td.{state}"));
            assert_eq!(shown, q[state].to_string(), "{queue} {state}");
        }
    }

    // The page updates when a job is enqueued from outside.
    let before: i64 = b.text("#totals td.ready").parse().unwrap();
    Record {
        log: log.path(),
        key: "live".into(),
    }
    .delay()
    .queue("other")
    .enqueue(&t.db)
    .unwrap();
    let after = b.wait_text("#totals td.ready", Duration::from_secs(10), |t| {
        t.parse::<i64>().is_ok_and(|n| n == before + 1)
    });
    assert_eq!(
        after,
        (before + 1).to_string(),
        "the overview refreshed itself"
    );

    // A queue's rate set from the overview's form: the notice, the badge, the stored rate;
    // a rate that does not parse is refused with the grammar.
    let wait = Duration::from_secs(10);
    b.type_into("#queue-rate input[name='queue']", "mail");
    b.type_into("#queue-rate input[name='rate']", "12/min");
    b.click("#queue-rate button");
    let notice = b.wait_text("#notice", wait, |t| t.contains("at most"));
    assert_eq!(notice, "queue mail: at most 12/min starts");
    let badge = b.wait_text("tr[data-queue='mail'] .badge.rate", wait, |t| !t.is_empty());
    assert_eq!(badge, "at most 12/min starts");
    let rates = t.db.rate_limits().unwrap();
    assert_eq!(rates.len(), 1, "{rates:?}");
    assert_eq!(rates[0].scope, dj::RateScope::Queue("mail".into()));
    assert_eq!(rates[0].rate, "12/min".parse().unwrap());
    b.type_into("#queue-rate input[name='queue']", "mail");
    b.type_into("#queue-rate input[name='rate']", "12 a minute");
    b.click("#queue-rate button");
    let refused = b.wait_text("main", wait, |t| t.contains("invalid rate"));
    assert!(refused.contains("write STARTS/PERIOD"), "{refused}");
    b.go(&format!("{}/", web.url));
    b.type_into("#queue-rate input[name='queue']", "mail");
    b.type_into("#queue-rate input[name='rate']", "none");
    b.click("#queue-rate button");
    let notice = b.wait_text("#notice", wait, |t| t.contains("removed"));
    assert_eq!(notice, "queue mail: rate limit removed");
    assert!(t.db.rate_limits().unwrap().is_empty());

    // Pause and resume from the queue's row: the notice, the badge, the stored state.
    b.click_now("tr[data-queue='mail'] button.pause");
    let notice = b.wait_text("#notice", wait, |t| t.contains("paused"));
    assert_eq!(notice, "queue mail: paused");
    let badge = b.wait_text("tr[data-queue='mail'] .badge.paused", wait, |t| {
        !t.is_empty()
    });
    assert_eq!(badge, "paused");
    assert_eq!(t.db.paused_queues().unwrap(), vec!["mail".to_owned()]);
    b.click_now("tr[data-queue='mail'] button.resume");
    let notice = b.wait_text("#notice", wait, |t| t.contains("resumed"));
    assert_eq!(notice, "queue mail: resumed");
    assert!(t.db.paused_queues().unwrap().is_empty());

    // A limit on running jobs from its form.
    b.type_into("#queue-limit input[name='queue']", "mail");
    b.type_into("#queue-limit input[name='max_running']", "3");
    b.click("#queue-limit button");
    let notice = b.wait_text("#notice", wait, |t| t.contains("running"));
    assert_eq!(notice, "queue mail: at most 3 running");
    let badge = b.wait_text("tr[data-queue='mail'] .badge.limit", wait, |t| {
        !t.is_empty()
    });
    assert_eq!(badge, "at most 3 running");
    assert_eq!(t.db.queue_limits().unwrap(), vec![("mail".to_owned(), 3)]);

    // The last hour's chart: a bar for this minute's failed attempts, titled with its
    // counts; the busiest minute's total.
    let chart = b.script(
        "const bars = [...document.querySelectorAll('#throughput-chart g')]; \
         const failed = bars.filter(g => g.querySelector('rect.failed')); \
         return [bars.length, failed.length, failed.length && failed[failed.length - 1].querySelector('title').textContent];",
    );
    assert_eq!(chart[0], json!(60), "{chart}");
    assert!(chart[1].as_u64().unwrap() >= 1, "{chart}");
    let title = chart[2].as_str().unwrap();
    assert!(
        title.contains(" succeeded, ") && title.contains(" failed"),
        "{title}"
    );
    let peak: i64 = b.text("#chart-peak").parse().unwrap();
    assert!(
        peak >= 3,
        "the busiest minute had the 3 failed attempts: {peak}"
    );

    // Times say how long ago, with the exact time on hover.
    let when = b.script(
        "const t = document.querySelector('#per-minute time[title]'); \
         return t && [t.innerText, t.getAttribute('title'), t.getAttribute('datetime')];",
    );
    let relative = when[0].as_str().unwrap();
    assert!(
        relative == "just now" || relative.ends_with(" ago"),
        "{when}"
    );
    assert!(
        when[1].as_str().unwrap().ends_with('Z') && when[1] == when[2],
        "{when}"
    );

    // Dark when the system asks for it.
    let background = |b: &Browser| {
        b.script("return getComputedStyle(document.body).backgroundColor;")
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(background(&b), "rgb(255, 255, 255)");
    b.call(
        reqwest::Method::POST,
        "/goog/cdp/execute",
        json!({
            "cmd": "Emulation.setEmulatedMedia",
            "params": {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
        }),
    );
    assert_eq!(background(&b), "rgb(22, 24, 29)");

    // Filter failed jobs by queue, retry all matching, confirm: they are ready.
    b.go(&format!("{}/jobs", web.url));
    b.type_into("input[name='queue']", "mail");
    b.script("document.querySelector(\"select[name='state']\").value = 'failed';");
    // Each click navigates: read the next page once it has loaded (the old page's `#total`,
    // every job, could be read in between; it was, once in CI).
    b.click("#apply");
    assert_eq!(b.wait_text("#total", wait, |t| t == "3"), "3");
    b.click("#bulk-retry");
    let h1 = b.wait_text("h1", wait, |t| t.starts_with("retry 3 jobs"));
    assert!(h1.starts_with("retry 3 jobs"), "{h1}");
    b.click("#confirm");
    let notice = b.wait_text("#notice", wait, |t| t.contains("done on 3 jobs"));
    assert!(notice.contains("done on 3 jobs"), "{notice}");
    b.go(&format!("{}/jobs?queue=mail", web.url));
    let states = b.script(
        "return [...document.querySelectorAll('#job-list tr[data-id]')].map(r => r.dataset.state);",
    );
    assert_eq!(
        states,
        json!(["ready", "ready", "ready"]),
        "checked in the table"
    );
    assert_eq!(
        t.db.count_jobs(&JobFilter {
            state: Some(JobState::Failed),
            ..JobFilter::default()
        })
        .unwrap(),
        0
    );

    // A job's page shows its whole last_error.
    let failed = AlwaysFails {
        log: log.path(),
        key: "page".into(),
    }
    .delay()
    .enqueue(&t.db)
    .unwrap();
    dj::Worker::new(t.db.clone())
        .max_attempts(1)
        .destroy_failed_jobs(false)
        .work_off(10)
        .unwrap();
    let stored = t.db.job(failed).unwrap().unwrap().last_error.unwrap();
    b.go(&format!("{}/jobs/{failed}", web.url));
    assert_eq!(b.text("#last-error"), stored.trim_end());

    // A script in a payload is text, not code.
    b.go(&format!("{}/jobs/{hostile}", web.url));
    assert!(b
        .text("#handler")
        .contains("<script>document.title='pwned'</script>"));
    let title = b.script("return document.title;");
    assert_eq!(
        title,
        json!(format!("dj · job {hostile}")),
        "the payload did not run"
    );
}
