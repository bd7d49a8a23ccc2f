//! The conformance suite: every case runs on every backend (the backend is a parameter), so a
//! behaviour difference between PostgreSQL, SQLite and MySQL is a test failure.
//!
//! When no PostgreSQL (or MySQL) server answers, its cases are reported as ignored, except
//! under `CI=true`, where an unreachable server fails them: CI always runs every backend.

mod async_enqueue;
mod async_jobs;
mod attempts;
mod batches;
mod browser;
mod chaos;
mod claim_plan;
mod control;
mod cron;
mod deadlines;
mod encrypted;
mod enqueue;
mod failures;
mod fairness;
mod hooks;
mod hosts;
mod lane;
mod library;
mod log_lines;
mod operations;
mod order;
mod pause;
mod pgbouncer;
mod postgres_only;
mod processes;
mod progress;
mod rates;
mod results;
mod retention;
mod sequences;
mod sql_enqueue;
mod sqlite_only;
mod state;
mod testing;
mod transactional;
mod unique;
mod wakeups;
mod web;
mod workflows;

use dj_tests::support::{
    mysql_available, mysql_base_url, postgres_available, postgres_base_url, Backend,
};
use libtest_mimic::{Arguments, Failed, Trial};

/// A case: a name and a function of the backend.
pub type Case = (&'static str, fn(Backend));

fn main() {
    // Several cases panic on purpose inside jobs (dj catches it); print one line, not a
    // backtrace, for each.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("panic (expected in some cases): {info}")
    }));
    let args = Arguments::from_args();
    let postgres = postgres_available();
    let mysql = mysql_available();
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if let Err(e) = &postgres {
        eprintln!(
            "note: PostgreSQL at {} is unreachable ({e}); {}",
            postgres_base_url(),
            if in_ci {
                "CI=true, so its cases fail"
            } else {
                "its cases are reported as ignored (set DJ_TEST_DATABASE_URL to run them)"
            }
        );
    }
    if let Err(e) = &mysql {
        eprintln!(
            "note: MySQL at {} is unreachable ({e}); {}",
            mysql_base_url(),
            if in_ci {
                "CI=true, so its cases fail"
            } else {
                "its cases are reported as ignored (set DJ_TEST_MYSQL_URL to run them)"
            }
        );
    }
    let shared: Vec<Case> = [
        order::CASES,
        enqueue::CASES,
        failures::CASES,
        hooks::CASES,
        testing::CASES,
        processes::CASES,
        operations::CASES,
        chaos::CASES,
        async_jobs::CASES,
        deadlines::CASES,
        async_enqueue::CASES,
        library::CASES,
        retention::CASES,
        pause::CASES,
        control::CASES,
        unique::CASES,
        cron::CASES,
        web::CASES,
        browser::CASES,
        log_lines::CASES,
        wakeups::CASES,
        state::CASES,
        sql_enqueue::CASES,
        results::CASES,
        sequences::CASES,
        workflows::CASES,
        batches::CASES,
        transactional::CASES,
        attempts::CASES,
        progress::CASES,
        encrypted::CASES,
        rates::CASES,
        fairness::CASES,
    ]
    .concat();
    let mut trials = Vec::new();
    for backend in [Backend::Sqlite, Backend::Postgres, Backend::Mysql] {
        let only_here: Vec<Case> = match backend {
            Backend::Postgres => [
                postgres_only::CASES,
                claim_plan::POSTGRES_CASES,
                chaos::POSTGRES_CASES,
                deadlines::POSTGRES_CASES,
                async_enqueue::POSTGRES_CASES,
                hosts::POSTGRES_CASES,
                pgbouncer::POSTGRES_CASES,
                state::POSTGRES_CASES,
                sql_enqueue::POSTGRES_CASES,
                lane::POSTGRES_CASES,
                results::POSTGRES_CASES,
                transactional::POSTGRES_CASES,
            ]
            .concat(),
            Backend::Sqlite => [
                sqlite_only::CASES,
                library::SQLITE_CASES,
                log_lines::SQLITE_CASES,
            ]
            .concat(),
            Backend::Mysql => workflows::MYSQL_CASES.to_vec(),
        };
        let server = match backend {
            Backend::Postgres => postgres.clone().err().map(|e| ("PostgreSQL", e)),
            Backend::Mysql => mysql.clone().err().map(|e| ("MySQL", e)),
            Backend::Sqlite => None,
        };
        for &(name, case) in shared.iter().chain(&only_here) {
            let unreachable = server.clone();
            let ignored = unreachable.is_some() && !in_ci;
            let trial = Trial::test(format!("{}::{name}", backend.name()), move || {
                if let Some((server, reason)) = unreachable {
                    return Err(Failed::from(format!(
                        "{server} is unreachable in CI: {reason}"
                    )));
                }
                case(backend);
                Ok(())
            });
            trials.push(trial.with_ignored_flag(ignored));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
