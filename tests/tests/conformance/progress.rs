//! Progress: a running job's `Context::progress` reports, coalesced by its worker to one
//! write a second, read with `Db::job_progress`, shown by `worker top` and the dashboard while
//! it runs, and gone once it ends.

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

use dj::Job;
use dj_tests::jobs::Reports;
use dj_tests::support::{Backend, TestDb};

use crate::operations::{dj, stdout, wait_until};
use crate::processes::{spawn_worker, stop_workers, worker_output};
use crate::web::{client, Web};
use crate::Case;

pub const CASES: &[Case] = &[(
    "progress_reported_in_a_tight_loop_is_written_once_a_second_shown_and_cleared",
    reported,
)];

/// A job takes 40 steps of 100 ms and reports each 1,000 times: polling `job_progress` sees
/// the fraction rise with the message, from a handful of writes (a second apart, not 40,000);
/// `top` and the dashboard show it; it is gone once the job ends.
fn reported(backend: Backend) {
    let t = TestDb::new(backend, "progress");
    let log = t.log();
    let id = Reports {
        log: log.path(),
        key: "r".into(),
        steps: 40,
        millis: 100,
        burst: 1_000,
    }
    .delay()
    .queue("reports")
    .enqueue(&t.db)
    .unwrap();
    let web = Web::start(&t, "web", &[]);
    let mut workers = [spawn_worker(&t, "w0", &["work", "--sleep-delay", "0.1"])];
    let mut seen: Vec<(f64, String, SystemTime)> = Vec::new();
    let (mut top, mut listed, mut page) = (String::new(), String::new(), String::new());
    let deadline = Instant::now() + Duration::from_secs(30);
    while log.count("done r") == 0 && Instant::now() < deadline {
        if let Some(p) = t.db.job_progress(id).unwrap() {
            seen.push((p.fraction, p.message.clone(), p.updated_at));
            if top.is_empty() && p.fraction > 0.2 {
                top = stdout(&dj(&t, &["top", "--once"]));
                let http = client();
                listed = (http.get(format!("{}/jobs?state=running&fragment=1", web.url)))
                    .send()
                    .unwrap()
                    .text()
                    .unwrap();
                page = (http.get(format!("{}/jobs/{id}", web.url)))
                    .send()
                    .unwrap()
                    .text()
                    .unwrap();
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let cleared = wait_until(Duration::from_secs(10), || {
        t.db.job_progress(id).unwrap().is_none()
            && t.query_i64("SELECT count(*) FROM dj_progress") == 0
    });
    stop_workers(&t, &mut workers);
    drop(web);
    assert_eq!(log.count("done r"), 1, "{}", worker_output(&t, "w0"));
    assert!(cleared, "the progress is deleted once the job ends");

    let fractions: Vec<f64> = seen.iter().map(|s| s.0).collect();
    assert!(
        fractions.windows(2).all(|w| w[0] <= w[1]),
        "progress only rises: {fractions:?}"
    );
    for (fraction, message, _) in &seen {
        let step: f64 = message
            .strip_prefix("step ")
            .and_then(|m| m.strip_suffix(" of 40"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("message {message:?}"));
        assert!(
            (fraction - step / 40.0).abs() < 1e-9,
            "{fraction} {message}"
        );
    }
    let writes: BTreeSet<SystemTime> = seen.iter().map(|s| s.2).collect();
    let distinct: BTreeSet<String> = seen.iter().map(|s| s.1.clone()).collect();
    assert!(
        (2..=8).contains(&writes.len()) && distinct.len() == writes.len(),
        "40,000 reports over 4 s were written {} times ({distinct:?})",
        writes.len()
    );
    let times: Vec<&SystemTime> = writes.iter().collect();
    for pair in times.windows(2) {
        let apart = pair[1].duration_since(*pair[0]).unwrap();
        assert!(
            apart >= Duration::from_millis(700),
            "writes {apart:?} apart"
        );
    }

    assert!(top.contains("PROGRESS") && top.contains("step "), "{top}");
    let cell = listed
        .split(&format!("data-id=\"{id}\""))
        .nth(1)
        .and_then(|row| row.split("class=\"progress\">").nth(1))
        .and_then(|cell| cell.split('<').next())
        .unwrap_or_default();
    assert!(cell.contains("% step "), "{listed}");
    assert!(
        page.contains("id=\"progress\"") && page.contains("% step "),
        "{page}"
    );
}
