//! The jobs the benchmarks run: a no-op, and a no-op that stamps when it started so the
//! pickup-latency workload can measure enqueue-commit → perform-start.

use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use dj::{Context, Job, Perform};
use serde::{Deserialize, Serialize};

/// Does nothing: what every throughput figure measures is dj's own cost.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
pub struct Noop {
    pub n: u64,
}

impl Perform for Noop {
    type Error = std::convert::Infallible;
    fn perform(&self, _ctx: &Context) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Records the instant its `perform` started, under its sequence number.
#[derive(Debug, Clone, Job, Serialize, Deserialize)]
pub struct Stamp {
    pub seq: usize,
}

impl Perform for Stamp {
    type Error = std::convert::Infallible;
    fn perform(&self, _ctx: &Context) -> Result<(), Self::Error> {
        let now = Instant::now();
        starts()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((self.seq, now));
        Ok(())
    }
}

/// `(seq, perform started)` of every [`Stamp`] run in this process.
pub fn starts() -> &'static Mutex<Vec<(usize, Instant)>> {
    static STARTS: OnceLock<Mutex<Vec<(usize, Instant)>>> = OnceLock::new();
    STARTS.get_or_init(|| Mutex::new(Vec::new()))
}
