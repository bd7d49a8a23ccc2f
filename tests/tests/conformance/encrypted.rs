//! Encrypted arguments (`#[job(encrypted = true)]`): a job's fields are stored sealed under
//! the first key of `DJ_ENCRYPTION_KEYS`, opened by workers holding that key (also after a
//! rotation puts a new key first), and a worker without it fails the job with an error that
//! names the key, as it does a row altered in the table; the dashboard shows the key, not the
//! fields.

use std::time::Duration;

use dj::{Job, JobFilter};
use dj_tests::jobs::{keys, Charge};
use dj_tests::support::{Backend, TestDb};

use crate::operations::wait_until;
use crate::processes::{signal, spawn_with_env, wait_exit, worker_output};
use crate::web::{client, Web};
use crate::Case;

const WORKER: &str = env!("CARGO_BIN_EXE_dj-test-worker");

pub const CASES: &[Case] = &[(
    "encrypted_fields_are_stored_sealed_opened_after_rotation_and_refused_without_the_key",
    sealed,
)];

fn stop(t: &TestDb, child: &mut std::process::Child, label: &str) {
    signal(child, libc::SIGTERM);
    let status = wait_exit(child, Duration::from_secs(30));
    assert!(
        status.success(),
        "{label}: {status}\n{}",
        worker_output(t, label)
    );
}

fn sealed(backend: Backend) {
    // The enqueuing process seals under k1 (every case of this binary that sets it sets it
    // to this value).
    std::env::set_var("DJ_ENCRYPTION_KEYS", keys::K1);
    let t = TestDb::new(backend, "encrypted");
    let log = t.log();
    let charge = |i: usize| Charge {
        log: log.path(),
        key: format!("c{i}"),
        card: format!("4111-1111-1111-{i:04}"),
    };
    let ids: Vec<i64> = (0..20)
        .map(|i| {
            let delayed = charge(i).delay().priority((i % 3) as i32);
            let delayed = if i % 2 == 0 {
                delayed.queue("billing")
            } else {
                delayed
            };
            delayed.enqueue(&t.db).unwrap()
        })
        .collect();
    for id in &ids {
        let handler = t.db.job(*id).unwrap().unwrap().handler;
        assert!(handler.contains("\"encrypted\":\"v1:k1:"), "{handler}");
        assert!(
            !handler.contains("4111") && !handler.contains("\"args\""),
            "{handler}"
        );
    }
    // A row whose sealed fields were altered in the table.
    let altered = charge(98).delay().queue("altered").enqueue(&t.db).unwrap();
    let handler = t.db.job(altered).unwrap().unwrap().handler;
    let data_at = handler.find("v1:k1:").unwrap() + 6;
    let flipped = if &handler[data_at + 30..data_at + 31] == "A" {
        "B"
    } else {
        "A"
    };
    let tampered = format!(
        "{}{flipped}{}",
        &handler[..data_at + 30],
        &handler[data_at + 31..]
    );
    t.exec(&format!(
        "UPDATE delayed_jobs SET handler = '{tampered}' WHERE id = {altered}"
    ));

    // After a rotation, k2 first and k1 still there: the old jobs open.
    let rotated = format!("{},{}", keys::K2, keys::K1);
    let args = ["work", "--sleep-delay", "0.1"];
    let mut w = spawn_with_env(
        WORKER,
        &t,
        "w0",
        &t.url,
        &args,
        &[("DJ_ENCRYPTION_KEYS", &rotated)],
    );
    let done = wait_until(Duration::from_secs(60), || {
        log.count_prefix("charge ") == 20
            && t.db
                .job(altered)
                .unwrap()
                .is_some_and(|r| r.failed_at.is_some())
    });
    stop(&t, &mut w, "w0");
    assert!(done, "{}", worker_output(&t, "w0"));
    for i in 0..20 {
        assert_eq!(log.count(&format!("charge c{i} 4111-1111-1111-{i:04}")), 1);
    }
    let row = t.db.job(altered).unwrap().unwrap();
    let error = row.last_error.unwrap_or_default();
    assert!(
        error.contains("could not be decrypted with key `k1`") && !error.contains("4111"),
        "{error}"
    );

    // A worker with only k3 cannot open a k1 job: it fails for good, naming the key.
    let stranded = charge(99).delay().queue("stranded").enqueue(&t.db).unwrap();
    let mut w = spawn_with_env(
        WORKER,
        &t,
        "w1",
        &t.url,
        &["work", "--sleep-delay", "0.1"],
        &[("DJ_ENCRYPTION_KEYS", keys::K3)],
    );
    let failed = wait_until(Duration::from_secs(30), || {
        t.db.job(stranded)
            .unwrap()
            .is_some_and(|r| r.failed_at.is_some())
    });
    stop(&t, &mut w, "w1");
    assert!(failed, "{}", worker_output(&t, "w1"));
    let error =
        t.db.job(stranded)
            .unwrap()
            .unwrap()
            .last_error
            .unwrap_or_default();
    assert!(
        error.contains(
            "encrypted with key `k1`, which DJ_ENCRYPTION_KEYS does not have (it has `k3`)"
        ),
        "{error}"
    );
    assert_eq!(log.count_prefix("charge c99"), 0);
    assert_eq!(
        t.db.count_jobs(&JobFilter::default()).unwrap(),
        2,
        "only the two that could not be opened are left"
    );

    // The dashboard shows the key, not the sealed text nor the fields.
    let web = Web::start(&t, "web", &[]);
    let page = client()
        .get(format!("{}/jobs/{stranded}", web.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(page.contains("(encrypted with key k1)"), "{page}");
    assert!(!page.contains("v1:k1:") && !page.contains("4111"), "{page}");
    // Its search for a key's prefix lists the jobs still sealed under it.
    let listed = client()
        .get(format!("{}/jobs?q=v1:k1:&fragment=1", web.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        listed.contains(&format!("data-id=\"{stranded}\"")),
        "{listed}"
    );
}
