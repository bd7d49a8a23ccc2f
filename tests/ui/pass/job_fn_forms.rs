//! Every form `#[dj::job]` takes, and the struct and constants it generates.

#![deny(warnings, missing_docs)]

use std::fmt;
use std::time::Duration;

use dj::{Job, JobOptions, Perform};

/// A job's own error.
#[derive(Debug)]
pub struct MailError;

impl fmt::Display for MailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the mail server said no")
    }
}

impl std::error::Error for MailError {}

/// `Result<(), E>`: `E` becomes the job's error.
#[dj::job(queue = "mail", priority = 1, max_attempts = 5, max_run_time = "30s")]
pub fn send_welcome(user_id: i64, email: String) -> Result<(), MailError> {
    let _ = (user_id, email);
    Ok(())
}

/// No return type: the job cannot fail.
#[dj::job]
pub fn touch(user_id: i64) {
    let _ = user_id;
}

/// `-> ()`, no parameters, a name and aliases of its own.
#[dj::job(name = "cleanup", aliases = ["old_cleanup"])]
fn clean_up() -> () {}

/// The worker's context first: passed in, not stored.
#[dj::job(queue = "reports")]
pub(crate) fn build_report(ctx: &dj::Context, report_id: u64, mut pages: Vec<u32>) {
    pages.push(ctx.job().attempts);
    let _ = (report_id, pages);
}

/// The context by its short name, with a path error type.
mod short_names {
    use dj::Context;

    /// A job in a module.
    #[dj::job]
    pub fn resize(_ctx: &Context, r#type: String) -> Result<(), std::io::Error> {
        let _ = r#type;
        Ok(())
    }
}

fn main() {
    assert_eq!(SendWelcome::NAME, "send_welcome");
    assert_eq!(
        SendWelcome::OPTIONS,
        JobOptions::new()
            .queue("mail")
            .priority(1)
            .max_attempts(5)
            .max_run_time(Duration::from_secs(30))
    );
    assert_eq!(Touch::NAME, "touch");
    assert_eq!(CleanUp::NAME, "cleanup");
    assert_eq!(CleanUp::ALIASES, ["old_cleanup"]);
    assert_eq!(BuildReport::NAME, "build_report");
    assert_eq!(short_names::Resize::NAME, "resize");

    // The functions stay callable as they were.
    send_welcome(7, "a@example.com".into()).unwrap();
    touch(7);
    clean_up();

    // The generated structs: public fields named after the parameters.
    let job = SendWelcome {
        user_id: 7,
        email: "a@example.com".into(),
    };
    let _ = (&job.user_id, &job.email);
    let _: dj::Delayed<SendWelcome> = job.delay();
    let _ = Touch { user_id: 7 }.delay().priority(3);
    let _ = CleanUp {}.delay();
    let _ = BuildReport {
        report_id: 1,
        pages: vec![1],
    }
    .delay();
    let _ = short_names::Resize {
        r#type: "png".into(),
    }
    .delay();

    // The error types.
    fn error_of<J: Perform>(_: &J) -> &'static str {
        std::any::type_name::<J::Error>()
    }
    assert!(error_of(&Touch { user_id: 1 }).ends_with("Infallible"));
    assert!(error_of(&SendWelcome {
        user_id: 1,
        email: String::new()
    })
    .ends_with("MailError"));
}
