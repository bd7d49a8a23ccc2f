//! Tracing: one `dj.job` span per attempt, with the job's id, name, queue, attempt number and
//! worker, around its hooks and perform, so that what a job logs carries them. A subscriber
//! of the test's own records every span and event (a test binary of its own, so that its
//! global subscriber sees the worker's threads and nothing of other tests).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use dj::{Context, Job, JobError, Perform};
use dj_tests::recording::Fields;
use serde::{Deserialize, Serialize};
use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Fails its first attempt and logs from inside `perform` both times.
#[derive(Debug, Job, Serialize, Deserialize)]
#[job(queue = "traced")]
struct Traced {
    fail_first: bool,
}

impl Perform for Traced {
    type Error = JobError;
    fn perform(&self, ctx: &Context) -> Result<(), JobError> {
        tracing::info!("inside perform");
        if self.fail_first && ctx.job().attempts == 0 {
            return Err(JobError::retry_in(
                dj::Message("first try fails".into()),
                std::time::Duration::ZERO,
            ));
        }
        Ok(())
    }
}

/// A `dj.job` span's fields, and the events logged inside it.
#[derive(Debug, Clone, Default)]
struct Seen {
    fields: BTreeMap<String, String>,
    events: Vec<String>,
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Seen>>>);

/// The index of a recorded `dj.job` span, kept in the span's extensions.
struct Index(usize);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        if attrs.metadata().name() != "dj.job" {
            return;
        }
        let mut seen = Seen::default();
        attrs.record(&mut Fields(&mut seen.fields));
        let mut all = self.0.lock().unwrap();
        all.push(seen);
        let span = ctx.span(id).expect("the new span");
        span.extensions_mut().insert(Index(all.len() - 1));
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: LayerContext<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        for span in scope {
            if let Some(Index(i)) = span.extensions().get::<Index>() {
                let mut fields = BTreeMap::new();
                event.record(&mut Fields(&mut fields));
                let message = fields.remove("message").unwrap_or_default();
                self.0.lock().unwrap()[*i].events.push(message);
            }
        }
    }
}

#[test]
fn one_dj_job_span_per_attempt_with_its_fields_around_the_jobs_own_logs() {
    let recorder = Recorder::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(recorder.clone()))
        .unwrap();
    let dir = std::env::temp_dir().join(format!("dj-spans-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dj::Db::open(&format!("sqlite:{}", dir.join("jobs.db").display())).unwrap();
    db.migrate().unwrap();
    let id = Traced { fail_first: true }.delay().enqueue(&db).unwrap();
    let worker = dj::Worker::new(db.clone());
    let name = worker.name().to_owned();
    // The retry is due at once: one work-off may make both attempts, or leave the second to
    // the next.
    let (mut succeeded, mut failed) = (0, 0);
    let report = worker.work_off(10).unwrap();
    succeeded += report.succeeded;
    failed += report.failed;
    for _ in 0..5 {
        if succeeded == 1 {
            break;
        }
        let report = dj::Worker::new(db.clone()).work_off(10).unwrap();
        succeeded += report.succeeded;
        failed += report.failed;
    }
    assert_eq!((succeeded, failed), (1, 1));

    let spans = recorder.0.lock().unwrap().clone();
    assert_eq!(spans.len(), 2, "one span per attempt: {spans:#?}");
    for (attempt, span) in spans.iter().enumerate() {
        let f = &span.fields;
        assert_eq!(f["id"], id.to_string(), "{span:?}");
        assert_eq!(f["name"], "Traced");
        assert_eq!(f["queue"], "traced");
        assert_eq!(f["attempt"], (attempt + 1).to_string());
        assert!(f["worker"].starts_with("host:"), "{span:?}");
        assert!(
            span.events.iter().any(|e| e == "inside perform"),
            "the job's own log line is inside its span: {span:?}"
        );
    }
    assert_eq!(
        spans[0].fields["worker"], name,
        "the first attempt ran on the first worker"
    );
    std::fs::remove_dir_all(&dir).ok();
}
