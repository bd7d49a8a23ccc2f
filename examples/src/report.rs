//! A small workflow app: fetch the feeds, transform each one (its own step, so they run in
//! parallel on any worker), then report on all of them once every transform has succeeded.
//! Each step hands its output to the steps after it through its recorded result.
//!
//! ```text
//!              ┌─▶ transform-0 ─┐
//!   fetch ─────┼─▶ transform-1 ─┼──▶ report
//!              └─▶ transform-2 ─┘
//! ```

use dj::{Context, Job, JobError, Perform, Workflow};
use serde::{Deserialize, Serialize};

use crate::{http_get, item_titles};

/// Fetches every feed and records their titles, one list per feed.
#[derive(Debug, Job, Serialize, Deserialize)]
#[job(queue = "feeds", max_attempts = 5)]
pub struct FetchAll {
    pub urls: Vec<String>,
}

impl Perform for FetchAll {
    type Error = JobError;
    fn perform(&self, ctx: &Context) -> Result<(), JobError> {
        let mut feeds = Vec::new();
        for url in &self.urls {
            let xml = http_get(url).map_err(JobError::new)?;
            feeds.push(item_titles(&xml));
        }
        ctx.set_result(&feeds)?;
        Ok(())
    }
}

/// What one transform found in its feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedSummary {
    pub feed: usize,
    pub titles: usize,
    pub words: usize,
    pub longest: String,
}

/// Summarizes feed `feed` of what `fetch` recorded.
#[derive(Debug, Job, Serialize, Deserialize)]
pub struct Transform {
    pub feed: usize,
}

impl Perform for Transform {
    type Error = JobError;
    fn perform(&self, ctx: &Context) -> Result<(), JobError> {
        let feeds: Vec<Vec<String>> = ctx.dependency_result("fetch")?;
        let titles = feeds
            .get(self.feed)
            .ok_or_else(|| JobError::permanent(format!("fetch recorded no feed {}", self.feed)))?;
        let summary = FeedSummary {
            feed: self.feed,
            titles: titles.len(),
            words: titles.iter().map(|t| t.split_whitespace().count()).sum(),
            longest: titles
                .iter()
                .max_by_key(|t| t.len())
                .cloned()
                .unwrap_or_default(),
        };
        ctx.set_result(&summary)?;
        Ok(())
    }
}

/// The report over every transform's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub feeds: usize,
    pub titles: usize,
    pub words: usize,
}

/// Adds up the summaries of `feeds` transforms.
#[derive(Debug, Job, Serialize, Deserialize)]
#[job(queue = "reports")]
pub struct MakeReport {
    pub feeds: usize,
}

impl Perform for MakeReport {
    type Error = JobError;
    fn perform(&self, ctx: &Context) -> Result<(), JobError> {
        let mut report = Report {
            feeds: self.feeds,
            titles: 0,
            words: 0,
        };
        for feed in 0..self.feeds {
            let summary: FeedSummary = ctx.dependency_result(&transform_step(feed))?;
            report.titles += summary.titles;
            report.words += summary.words;
        }
        ctx.set_result(&report)?;
        Ok(())
    }
}

fn transform_step(feed: usize) -> String {
    format!("transform-{feed}")
}

/// The workflow over `urls`: fetch, one transform per feed, report.
pub fn report_workflow(urls: Vec<String>) -> Workflow {
    let feeds = urls.len();
    let mut workflow = Workflow::new("feed report");
    workflow.step("fetch", FetchAll { urls });
    for feed in 0..feeds {
        workflow
            .step(transform_step(feed), Transform { feed })
            .after(["fetch"]);
    }
    workflow
        .step("report", MakeReport { feeds })
        .after((0..feeds).map(transform_step));
    workflow
}
