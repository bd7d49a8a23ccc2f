//! Traces across the queue: with a propagator installed, the enqueueing code's W3C
//! `traceparent` is stored with the job, and the attempt's `dj.job` span records it and is
//! handed to the propagator to continue that trace; without a context (or with an invalid
//! one) nothing is stored. A subscriber of the test's own records the spans (a test binary of
//! its own, so that its global subscriber and propagator see nothing of other tests), on
//! SQLite and on PostgreSQL.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use dj::trace::Propagator;
use dj::{Job, Perform};
use dj_tests::recording::Fields;
use dj_tests::support::{in_ci, postgres_available, Backend, TestDb};
use serde::{Deserialize, Serialize};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

#[derive(Debug, Job, Serialize, Deserialize)]
struct Caused {
    n: u32,
}

impl Perform for Caused {
    type Error = std::convert::Infallible;
    fn perform(&self, _ctx: &dj::Context) -> Result<(), Self::Error> {
        Ok(())
    }
}

thread_local! {
    /// The trace context of the "request" enqueueing now.
    static REQUEST: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Continued traces: the span's id and the `traceparent` it was asked to continue.
#[derive(Clone, Default)]
struct TestPropagator(Arc<Mutex<Vec<(u64, String)>>>);

impl Propagator for TestPropagator {
    fn current(&self) -> Option<String> {
        REQUEST.with(|r| r.borrow().clone())
    }
    fn continue_trace(&self, span: &tracing::Span, traceparent: &str) {
        let id = span.id().expect("an enabled span").into_u64();
        self.0.lock().unwrap().push((id, traceparent.to_owned()));
    }
}

/// Every `dj.job` span's fields, by span id.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<BTreeMap<u64, BTreeMap<String, String>>>>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _ctx: LayerContext<'_, S>) {
        if attrs.metadata().name() == "dj.job" {
            let mut fields = BTreeMap::new();
            attrs.record(&mut Fields(&mut fields));
            self.0.lock().unwrap().insert(id.into_u64(), fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: LayerContext<'_, S>) {
        if let Some(fields) = self.0.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(fields));
        }
    }
}

fn traceparent(n: u32) -> String {
    format!("00-{:032x}-{:016x}-01", 0xabc0_0000 + n, 0x5ec0 + n)
}

#[test]
fn a_jobs_attempt_continues_the_trace_that_enqueued_it() {
    let recorder = Recorder::default();
    let propagator = TestPropagator::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(recorder.clone()))
        .unwrap();
    dj::trace::set_propagator(propagator.clone()).unwrap();
    assert!(
        dj::trace::set_propagator(TestPropagator::default()).is_err(),
        "a second propagator is refused"
    );
    let mut backends = vec![Backend::Sqlite];
    match postgres_available() {
        Ok(()) => backends.push(Backend::Postgres),
        Err(e) if in_ci() => panic!("PostgreSQL is unreachable in CI: {e}"),
        Err(e) => eprintln!("PostgreSQL skipped: {e}"),
    }
    for backend in backends {
        recorder.0.lock().unwrap().clear();
        propagator.0.lock().unwrap().clear();
        check(backend, &recorder, &propagator);
    }
}

fn check(backend: Backend, recorder: &Recorder, propagator: &TestPropagator) {
    let t = TestDb::new(backend, "traces");
    // Five jobs from five "requests", one from none, one from a context that is no
    // traceparent.
    let mut traced = BTreeMap::new();
    for n in 0..5 {
        REQUEST.with(|r| *r.borrow_mut() = Some(traceparent(n)));
        let id = Caused { n }.delay().queue("traced").enqueue(&t.db).unwrap();
        traced.insert(id, traceparent(n));
    }
    REQUEST.with(|r| *r.borrow_mut() = None);
    let plain = Caused { n: 5 }.delay().enqueue(&t.db).unwrap();
    REQUEST.with(|r| *r.borrow_mut() = Some("not-a-traceparent".into()));
    let garbled = Caused { n: 6 }.delay().enqueue(&t.db).unwrap();
    REQUEST.with(|r| *r.borrow_mut() = None);
    for (id, tp) in &traced {
        let handler = t.db.job(*id).unwrap().unwrap().handler;
        assert!(
            handler.contains(&format!("\"traceparent\":\"{tp}\"")),
            "{handler}"
        );
    }
    for id in [plain, garbled] {
        let handler = t.db.job(id).unwrap().unwrap().handler;
        assert!(!handler.contains("traceparent"), "{handler}");
    }

    let report = dj::Worker::new(t.db.clone()).work_off(10).unwrap();
    assert_eq!(report.succeeded, 7, "{report:?}");

    let spans = recorder.0.lock().unwrap().clone();
    let continued = propagator.0.lock().unwrap().clone();
    let by_job: BTreeMap<i64, (u64, &BTreeMap<String, String>)> = (spans.iter())
        .map(|(span, fields)| (fields["id"].parse().unwrap(), (*span, fields)))
        .collect();
    assert_eq!(by_job.len(), 7, "one dj.job span per job: {spans:#?}");
    for (id, tp) in &traced {
        let (span, fields) = by_job[id];
        assert_eq!(fields.get("traceparent"), Some(tp), "{fields:?}");
        assert!(
            continued.contains(&(span, tp.clone())),
            "job {id}'s span {span} continued {tp}: {continued:?}"
        );
    }
    for id in [plain, garbled] {
        let (span, fields) = by_job[&id];
        assert!(!fields.contains_key("traceparent"), "{fields:?}");
        assert!(continued.iter().all(|(s, _)| *s != span), "{continued:?}");
    }
    assert_eq!(continued.len(), 5, "{continued:?}");
}
