//! The command line's shape: commands, flags and the environment variables delayed_job reads.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use crate::duration::parse_duration;
use crate::error::{Error, Result};
use crate::model::{JobFilter, JobState};
use crate::worker::WorkerConfig;

/// A dj worker: performs the jobs stored in `delayed_jobs`.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// `postgres://...` or `sqlite:path`; default: DATABASE_URL, else sqlite:dj.sqlite3.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Log lines as plain text or as JSON objects (for log shippers).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "DJ_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// How long to wait for a database that does not answer before failing, e.g. `30s`,
    /// `5m`. Default: 30s for every command but `work` (and `start`'s workers), which wait
    /// until the database answers.
    #[arg(long, global = true, env = "DJ_WAIT_FOR_DATABASE", value_name = "DURATION", value_parser = parse_duration)]
    pub wait_for_database: Option<Duration>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// delayed_job's lines as text.
    Text,
    /// One JSON object per line, delayed_job's wording in its `message`.
    Json,
}

/// The worker binary's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work jobs until stopped by TERM/INT (delayed_job's `rake jobs:work`).
    Work(WorkArgs),
    /// Work until no job is ready, then exit; exits non-zero if any job failed
    /// (`rake jobs:workoff`).
    Workoff(WorkArgs),
    /// Create or upgrade the delayed_jobs table and its indexes (safe to repeat).
    Migrate,
    /// Print the schema SQL, for apps that manage their own migrations.
    Schema,
    /// List jobs, filtered by state, queue and name.
    Jobs(JobsArgs),
    /// Show one job, whole.
    Show(ShowArgs),
    /// Per queue: ready, scheduled, running and failed counts, and the oldest ready job's age.
    Stats(StatsArgs),
    /// Make failed (or scheduled) jobs run again now, with attempts reset.
    Retry(RetryArgs),
    /// Delete jobs by id or by filter.
    Delete(DeleteArgs),
    /// Delete every job, or every job of a queue (`rake jobs:clear`).
    Clear(ClearArgs),
    /// Release locks held by workers that are gone.
    Unlock(UnlockArgs),
    /// Stop claiming a queue's jobs, on every worker, until `resume` (running jobs finish).
    Pause(QueueArgs),
    /// Let workers claim a paused queue's jobs again.
    Resume(QueueArgs),
    /// Delete jobs that failed for good longer ago than --older-than (workers do it by
    /// themselves, per --keep-failed-for).
    Prune(PruneArgs),
    /// Cancel a job: a waiting one fails at once as "cancelled" (kept; `retry` undoes it), a
    /// running one is stopped by its worker within a second.
    Cancel(CancelArgs),
    /// Show a workflow: its state and each step's; with --cancel or --retry, act on it
    /// first.
    Workflow(WorkflowArgs),
    /// Limit a queue to N running jobs at once across every worker (`none` removes the
    /// limit; without N, list the limits).
    Limit(LimitArgs),
    /// Limit how many jobs of a queue (--queue) or concurrency key (--key) start per period
    /// across every worker: `20/s`, `100/min` (`none` removes it; without a rate, list them).
    Rate(RateArgs),
    /// List recurring jobs (schedules) with their last and next fire times, or remove one.
    Cron(CronArgs),
    /// A live view of queues, states, workers and throughput in the terminal.
    Top(TopArgs),
    /// Serve the dashboard (and Prometheus /metrics) over this database; prints its URL.
    #[cfg(feature = "web")]
    Web(WebArgs),
    /// Run a pool of worker processes in the foreground (`script/delayed_job start -n N`):
    /// restarts crashed workers, forwards TERM/INT, writes per-worker logs with --log-dir.
    Start(StartArgs),
    /// Stop the pool named by a pid file: TERM, then wait for it to exit.
    Stop(StopArgs),
    /// Whether the pool named by a pid file is running (exit 0 if so, 3 if not).
    Status(StatusArgs),
}

/// Options of `work` and `workoff`, with delayed_job's environment variables.
#[derive(Debug, Clone, Args)]
pub struct WorkArgs {
    /// Comma-separated queues to work (default: all, including jobs with no queue).
    #[arg(long, env = "QUEUES", value_delimiter = ',')]
    pub queues: Vec<String>,
    /// One queue to work (delayed_job's QUEUE).
    #[arg(long, env = "QUEUE", conflicts_with = "queues")]
    pub queue: Option<String>,
    /// Only jobs with priority >= this.
    #[arg(long, env = "MIN_PRIORITY", allow_negative_numbers = true)]
    pub min_priority: Option<i32>,
    /// Only jobs with priority <= this.
    #[arg(long, env = "MAX_PRIORITY", allow_negative_numbers = true)]
    pub max_priority: Option<i32>,
    /// Seconds to wait when no job is ready (PostgreSQL workers also wake on NOTIFY).
    #[arg(long, env = "SLEEP_DELAY", default_value = "5", value_parser = parse_duration)]
    pub sleep_delay: Duration,
    /// The most jobs to hold claimed beyond the running ones; within it, what the executors
    /// start within 100 ms at the pace jobs finish (0: claim only for free executors).
    #[arg(long, env = "READ_AHEAD", default_value_t = 1000)]
    pub read_ahead: usize,
    /// Jobs to run at once in this process.
    #[arg(long, short = 'c', env = "DJ_CONCURRENCY", default_value_t = 1)]
    pub concurrency: usize,
    /// Exit when no job is ready.
    #[arg(long)]
    pub exit_on_complete: bool,
    /// Runs in all before a job fails permanently (a job's own setting wins).
    #[arg(long, env = "MAX_ATTEMPTS", default_value_t = 25)]
    pub max_attempts: u32,
    /// Longest run of one job, e.g. 30s, 15m, 4h (a job's own setting wins).
    #[arg(long, env = "MAX_RUN_TIME", default_value = "4h", value_parser = parse_duration)]
    pub max_run_time: Duration,
    /// Delete permanently failed jobs instead of keeping them with failed_at set (the
    /// default keeps them, for `jobs --state failed`, `show` and `retry`, until
    /// --keep-failed-for has passed).
    #[arg(long, env = "DJ_DELETE_FAILED", conflicts_with = "keep_failed")]
    pub delete_failed: bool,
    /// Keep permanently failed jobs: the default now; accepted for older command lines.
    #[arg(long, env = "DJ_KEEP_FAILED")]
    pub keep_failed: bool,
    /// Delete kept failed jobs once they failed longer ago than this (done by one worker at a
    /// time, in batches).
    #[arg(long, env = "DJ_KEEP_FAILED_FOR", value_name = "DURATION", default_value = "14d", value_parser = parse_duration)]
    pub keep_failed_for: Duration,
    /// Delete stored job results (`Context::set_result`) once they are older than this (done
    /// by one worker at a time, in batches).
    #[arg(long, env = "DJ_RESULT_RETENTION", value_name = "DURATION", default_value = "1d", value_parser = parse_duration)]
    pub result_retention: Duration,
    /// On TERM/INT, how long to let running jobs finish before unlocking them.
    #[arg(long, env = "DJ_SHUTDOWN_TIMEOUT", default_value = "25s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
    /// How often to look for locks of dead workers and expired locks.
    #[arg(long, env = "DJ_RESCUE_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub rescue_interval: Duration,
    /// A worker whose heartbeat is older than this is dead (its jobs are freed by another
    /// worker); use the same value for every worker of one database.
    #[arg(long, env = "DJ_HEARTBEAT_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub heartbeat_timeout: Duration,
    /// Prefix of the worker name stored in locked_by.
    #[arg(long, env = "DJ_NAME_PREFIX")]
    pub name_prefix: Option<String>,
    /// Do not fire recurring jobs (other workers of the database still do).
    #[arg(long, env = "DJ_NO_CRON")]
    pub no_cron: bool,
    /// Claim every job the ordinary way (two row writes per job), never in the fast lane.
    #[arg(long, env = "DJ_NO_FAST_LANE")]
    pub no_fast_lane: bool,
    /// Rebuild delayed_jobs' indexes this often with REINDEX INDEX CONCURRENTLY (PostgreSQL;
    /// one worker at a time), e.g. 1d: returns the pages a held MVCC horizon left them.
    #[arg(long, env = "DJ_REINDEX_EVERY", value_name = "DURATION", value_parser = parse_duration)]
    pub reindex_every: Option<Duration>,
    /// Priority aging, e.g. 10m: jobs ready this long behind better priorities get one step
    /// better (priority - 1) this often, so that low priorities are not starved.
    #[arg(long, env = "DJ_PRIORITY_AGING", value_name = "DURATION", value_parser = parse_duration)]
    pub priority_aging: Option<Duration>,
    /// Serve Prometheus /metrics (this process's attempts, durations and claims, and the
    /// table's gauges) on this address, e.g. 127.0.0.1:9394.
    #[arg(long, env = "DJ_METRICS_BIND", value_name = "ADDR")]
    pub metrics_bind: Option<std::net::SocketAddr>,
}

impl WorkArgs {
    /// The `work` command line that gives a worker process these settings, on `queues`
    /// (empty: every queue) and named with `name_prefix`. Every option is written out, so
    /// the worker does not read delayed_job's environment variables again.
    pub(crate) fn command_line(&self, queues: &[String], name_prefix: &str) -> Vec<String> {
        // Destructured without `..`: a new option is a compile error here until it is passed on.
        let WorkArgs {
            queues: _,
            queue: _,
            min_priority,
            max_priority,
            sleep_delay,
            read_ahead,
            concurrency,
            exit_on_complete,
            max_attempts,
            max_run_time,
            delete_failed,
            // The default: nothing to pass on.
            keep_failed: _,
            keep_failed_for,
            result_retention,
            shutdown_timeout,
            rescue_interval,
            heartbeat_timeout,
            name_prefix: _,
            no_cron,
            no_fast_lane,
            reindex_every,
            priority_aging,
            // A pool's workers each serve on a port the supervisor gives them.
            metrics_bind: _,
        } = self;
        let secs = |d: &Duration| d.as_secs_f64().to_string();
        let mut args = vec!["work".to_owned()];
        if !queues.is_empty() {
            args.extend(["--queues".to_owned(), queues.join(",")]);
        }
        if let Some(min) = min_priority {
            args.push(format!("--min-priority={min}"));
        }
        if let Some(max) = max_priority {
            args.push(format!("--max-priority={max}"));
        }
        args.extend([
            "--sleep-delay".to_owned(),
            secs(sleep_delay),
            "--read-ahead".to_owned(),
            read_ahead.to_string(),
            "--concurrency".to_owned(),
            concurrency.to_string(),
            "--max-attempts".to_owned(),
            max_attempts.to_string(),
            "--max-run-time".to_owned(),
            secs(max_run_time),
            "--shutdown-timeout".to_owned(),
            secs(shutdown_timeout),
            "--rescue-interval".to_owned(),
            secs(rescue_interval),
            "--heartbeat-timeout".to_owned(),
            secs(heartbeat_timeout),
            "--keep-failed-for".to_owned(),
            secs(keep_failed_for),
            "--result-retention".to_owned(),
            secs(result_retention),
            "--name-prefix".to_owned(),
            name_prefix.to_owned(),
        ]);
        if *exit_on_complete {
            args.push("--exit-on-complete".to_owned());
        }
        if *delete_failed {
            args.push("--delete-failed".to_owned());
        }
        if *no_cron {
            args.push("--no-cron".to_owned());
        }
        if *no_fast_lane {
            args.push("--no-fast-lane".to_owned());
        }
        if let Some(every) = reindex_every {
            args.extend(["--reindex-every".to_owned(), secs(every)]);
        }
        if let Some(every) = priority_aging {
            args.extend(["--priority-aging".to_owned(), secs(every)]);
        }
        args
    }

    /// The worker settings these options give.
    pub fn config(&self) -> Result<WorkerConfig> {
        let mut queues: Vec<String> = self.queue.iter().cloned().collect();
        queues.extend(
            self.queues
                .iter()
                .map(|q| q.trim().to_owned())
                .filter(|q| !q.is_empty()),
        );
        for queue in &queues {
            crate::validate::queue_name(Some(queue))?;
        }
        if let (Some(min), Some(max)) = (self.min_priority, self.max_priority) {
            if min > max {
                return Err(Error::Invalid(format!(
                    "--min-priority {min} is above --max-priority {max}; no job could match"
                )));
            }
        }
        if self.concurrency == 0 {
            return Err(Error::Invalid(
                "--concurrency must be at least 1".to_owned(),
            ));
        }
        Ok(WorkerConfig {
            name_prefix: self.name_prefix.clone(),
            queues,
            min_priority: self.min_priority,
            max_priority: self.max_priority,
            sleep_delay: self.sleep_delay,
            read_ahead: self.read_ahead,
            concurrency: self.concurrency,
            exit_on_complete: self.exit_on_complete,
            max_attempts: self.max_attempts.max(1),
            max_run_time: self.max_run_time,
            destroy_failed_jobs: self.delete_failed,
            shutdown_timeout: self.shutdown_timeout,
            rescue_interval: self.rescue_interval,
            heartbeat_timeout: self.heartbeat_timeout,
            database_wait: None,
            keep_failed_for: self.keep_failed_for,
            result_retention: self.result_retention,
            max_snoozes: WorkerConfig::default().max_snoozes,
            cron: !self.no_cron,
            fast_lane: !self.no_fast_lane,
            reindex_every: self.reindex_every,
            priority_aging: self.priority_aging,
        })
    }
}

/// Filters shared by the read and bulk commands.
#[derive(Debug, Clone, Args)]
pub struct FilterArgs {
    /// ready, scheduled, running or failed.
    #[arg(long)]
    pub state: Option<JobState>,
    /// Only this queue.
    #[arg(long)]
    pub queue: Option<String>,
    /// Only this job name.
    #[arg(long)]
    pub name: Option<String>,
    /// Only the steps of this workflow (those with a row: held steps have none yet).
    #[arg(long)]
    pub workflow: Option<i64>,
}

impl FilterArgs {
    pub(crate) fn filter(&self) -> JobFilter {
        JobFilter {
            state: self.state,
            queue: self.queue.clone(),
            name: self.name.clone(),
            workflow: self.workflow,
            ..JobFilter::default()
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct JobsArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// At most this many rows; when more match, a last line says how many more.
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
    /// Print a JSON array of the rows (the "N more" note then goes to stderr).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ShowArgs {
    /// The job's id.
    pub id: i64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct StatsArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RetryArgs {
    /// The job to retry.
    #[arg(required_unless_present = "failed", conflicts_with = "failed")]
    pub id: Option<i64>,
    /// Retry every failed job (narrow with --queue and --name).
    #[arg(long)]
    pub failed: bool,
    /// Only this queue (with --failed).
    #[arg(long, requires = "failed")]
    pub queue: Option<String>,
    /// Only this job name (with --failed).
    #[arg(long, requires = "failed")]
    pub name: Option<String>,
    /// Confirm a bulk retry without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct DeleteArgs {
    /// The job to delete.
    #[arg(conflicts_with_all = ["state", "queue", "name"])]
    pub id: Option<i64>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Confirm a bulk delete without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ClearArgs {
    /// Only this queue.
    #[arg(long)]
    pub queue: Option<String>,
    /// Confirm without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct UnlockArgs {
    /// Release locks of workers that are gone, by the workers' own liveness rule: a registered
    /// worker whose heartbeat is older than --heartbeat-timeout, or (on this host) whose
    /// process no longer exists; a lock of an unregistered name older than the timeout.
    #[arg(long, required_unless_present = "worker")]
    pub stale: bool,
    /// Release every lock of this worker name.
    #[arg(long, conflicts_with = "stale")]
    pub worker: Option<String>,
    /// The heartbeat age (and, for unregistered names, the lock age) past which a worker
    /// counts as gone.
    #[arg(long, env = "DJ_HEARTBEAT_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub heartbeat_timeout: Duration,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `pause` and `resume`: which queue.
#[derive(Debug, Clone, Args)]
pub struct QueueArgs {
    /// The queue's name.
    pub queue: String,
}

/// `cancel`: which job.
#[derive(Debug, Clone, Args)]
pub struct CancelArgs {
    /// The job's id.
    pub id: i64,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `workflow`: which workflow, and what to do to it.
#[derive(Debug, Clone, Args)]
pub struct WorkflowArgs {
    /// The workflow's id (`Workflow::enqueue` returns it).
    pub id: i64,
    /// Cancel it: waiting steps are cancelled, ready ones dequeued, running ones asked to
    /// stop.
    #[arg(long, conflicts_with = "retry")]
    pub cancel: bool,
    /// Retry it: failed steps run again, cancelled ones wait on their dependencies again.
    #[arg(long)]
    pub retry: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `limit`: a queue's limit on running jobs.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// The queue's name (none: list every limit).
    pub queue: Option<String>,
    /// At most this many of its jobs run at once, or `none` to remove the limit.
    #[arg(value_parser = parse_limit, requires = "queue")]
    pub max_running: Option<Limit>,
}

/// `rate`: a queue's or key's rate limit.
#[derive(Debug, Clone, Args)]
pub struct RateArgs {
    /// The queue whose jobs it limits.
    #[arg(long, conflicts_with = "key")]
    pub queue: Option<String>,
    /// The stored concurrency key whose jobs it limits (as `show` prints it), replacing the
    /// rate they were enqueued with.
    #[arg(long)]
    pub key: Option<String>,
    /// At most STARTS per PERIOD (`20/s`, `100/min`, `5/10s`, `1000/h`), or `none` to
    /// remove the rate.
    #[arg(value_parser = parse_rate_arg)]
    pub rate: Option<RateArg>,
}

/// A rate as written on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateArg {
    /// At most this many starts per period.
    Set(crate::Rate),
    /// No rate.
    Unlimited,
}

fn parse_rate_arg(text: &str) -> Result<RateArg, String> {
    match text {
        "none" | "unlimited" => Ok(RateArg::Unlimited),
        rate => rate
            .parse()
            .map(RateArg::Set)
            .map_err(|e: crate::Error| e.to_string()),
    }
}

/// A queue limit as written on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// At most this many running.
    Max(u32),
    /// No limit.
    Unlimited,
}

fn parse_limit(text: &str) -> Result<Limit, String> {
    match text {
        "none" | "unlimited" => Ok(Limit::Unlimited),
        n => match n.parse::<u32>() {
            Ok(0) => Err("a limit of 0 would stop the queue; use `pause QUEUE` for that".into()),
            Ok(n) => Ok(Limit::Max(n)),
            Err(_) => Err(format!(
                "`{n}` is not a limit; write a number of jobs (e.g. 5) or `none`"
            )),
        },
    }
}

/// `top`: the live terminal view.
#[derive(Debug, Clone, Args)]
pub struct TopArgs {
    /// How often to redraw.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Print one view and exit (for scripts).
    #[arg(long)]
    pub once: bool,
}

/// `cron`: the schedules.
#[derive(Debug, Clone, Args)]
pub struct CronArgs {
    /// Remove the schedule of this name (one from code comes back when a worker starts).
    #[arg(long, value_name = "NAME")]
    pub remove: Option<String>,
    /// Print the schedules as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `web`: the dashboard.
#[cfg(feature = "web")]
#[derive(Debug, Clone, Args)]
pub struct WebArgs {
    /// The address to listen on (port 0: any free port). Off loopback it needs credentials.
    #[arg(long, default_value = "127.0.0.1:9292")]
    pub bind: std::net::SocketAddr,
    /// Require HTTP Basic credentials, USER:PASSWORD (or set DJ_WEB_TOKEN for a token).
    #[arg(
        long,
        value_name = "USER:PASSWORD",
        env = "DJ_WEB_AUTH",
        hide_env_values = true
    )]
    pub auth: Option<String>,
    /// Serve pages and /metrics only, no action.
    #[arg(long)]
    pub read_only: bool,
    /// Also answer requests naming this host (repeatable), e.g. the name a proxy or a tunnel
    /// serves the dashboard under; localhost and IP addresses are always answered, any port.
    /// Other Host names are refused (421): a defence against DNS rebinding.
    #[arg(long = "allow-host", value_name = "NAME", value_parser = crate::web::parse_allowed_host)]
    pub allow_host: Vec<String>,
    /// A text search reads the newest this many rows, and offers to search older ones (0:
    /// every row at once).
    #[arg(long, value_name = "ROWS", default_value_t = crate::web::SEARCH_WINDOW)]
    pub search_window: u32,
}

/// `prune`: delete old failed jobs now.
#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// Delete jobs that failed longer ago than this.
    #[arg(long, value_name = "DURATION", default_value = "14d", value_parser = parse_duration)]
    pub older_than: Duration,
}

/// `start`: a foreground pool of worker processes.
#[derive(Debug, Clone, Args)]
pub struct StartArgs {
    /// How many worker processes to run, on --queues (default: every queue).
    #[arg(
        short = 'n',
        long = "workers",
        default_value_t = 1,
        conflicts_with = "pool"
    )]
    pub workers: usize,
    /// A group of workers as `QUEUES:N`, e.g. `mail,feeds:2`; `*` means every queue, and
    /// `:N` may be left off for one worker. Repeat for several groups.
    #[arg(long, value_name = "QUEUES:N", value_parser = PoolSpec::parse, conflicts_with_all = ["queues", "queue"])]
    pub pool: Vec<PoolSpec>,
    /// Write each worker's output to DIR/dj-N.log instead of prefixing it on stdout.
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// Write the supervisor's pid here (for `stop` and `status`); removed on exit.
    #[arg(long, env = "DJ_PID_FILE")]
    pub pid_file: Option<PathBuf>,
    /// The settings each worker of the pool runs with.
    #[command(flatten)]
    pub work: WorkArgs,
}

/// One `--pool` group: which queues (empty: every queue) and how many workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSpec {
    /// The group's queues; empty means every queue.
    pub queues: Vec<String>,
    /// How many worker processes the group runs.
    pub workers: usize,
}

impl PoolSpec {
    /// `mail,feeds:2`, `*:3`, `mail` (one worker).
    pub fn parse(text: &str) -> Result<PoolSpec, String> {
        let (queues, workers) = match text.rsplit_once(':') {
            Some((queues, n)) => {
                let workers = n.trim().parse::<usize>().map_err(|_| {
                    format!("invalid pool `{text}`: `{n}` is not a number of workers; write e.g. `mail,feeds:2` or `*:3`")
                })?;
                (queues, workers)
            }
            None => (text, 1),
        };
        let queues: Vec<String> = queues
            .split(',')
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(str::to_owned)
            .collect();
        if queues.is_empty() {
            return Err(format!(
                "invalid pool `{text}`: no queue; write e.g. `mail,feeds:2`, or `*:2` for every queue"
            ));
        }
        if queues.iter().any(|q| q == "*") {
            if queues.len() > 1 {
                return Err(format!(
                    "invalid pool `{text}`: `*` (every queue) cannot be combined with named queues"
                ));
            }
            return Ok(PoolSpec {
                queues: Vec::new(),
                workers,
            });
        }
        for queue in &queues {
            crate::validate::queue_name(Some(queue)).map_err(|e| e.to_string())?;
        }
        Ok(PoolSpec { queues, workers })
    }
}

#[derive(Debug, Clone, Args)]
pub struct StopArgs {
    /// The pid file the pool was started with.
    #[arg(long, env = "DJ_PID_FILE")]
    pub pid_file: PathBuf,
    /// How long to wait for the pool to exit.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// The pid file the pool was started with.
    #[arg(long, env = "DJ_PID_FILE")]
    pub pid_file: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::{parse_duration, Cli, Command, PoolSpec};
    use clap::Parser;
    use std::time::Duration;

    #[test]
    fn pools() {
        let spec = |queues: &[&str], workers| PoolSpec {
            queues: queues.iter().map(|q| q.to_string()).collect(),
            workers,
        };
        assert_eq!(
            PoolSpec::parse("mail,feeds:2"),
            Ok(spec(&["mail", "feeds"], 2))
        );
        assert_eq!(PoolSpec::parse("*:3"), Ok(spec(&[], 3)));
        assert_eq!(PoolSpec::parse("mail"), Ok(spec(&["mail"], 1)));
        assert!(PoolSpec::parse("mail:x").is_err());
        assert!(PoolSpec::parse(":2").is_err());
        assert!(PoolSpec::parse("*,mail:2").is_err());
    }

    #[test]
    fn a_pool_worker_gets_the_pools_settings() {
        let cli = Cli::parse_from([
            "dj",
            "start",
            "-n",
            "2",
            "--queues",
            "a,b",
            "--sleep-delay",
            "0.25",
            "--min-priority",
            "-3",
            "--delete-failed",
            "--concurrency",
            "4",
        ]);
        let Command::Start(start) = cli.command else {
            panic!("parsed as start");
        };
        let line = start.work.command_line(&["a".into(), "b".into()], "dj.1");
        let worker = Cli::parse_from(std::iter::once("dj".to_owned()).chain(line));
        let Command::Work(work) = worker.command else {
            panic!("parsed as work");
        };
        let (mut want, got) = (start.work.config().unwrap(), work.config().unwrap());
        want.name_prefix = Some("dj.1".into());
        assert_eq!(format!("{want:?}"), format!("{got:?}"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30m1h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2days"), Ok(Duration::from_secs(2 * 86_400)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5x").is_err());
    }
}
