#[dj::job(cron = "0 0 3 * * *", tz = "Europe/Paris")]
fn nightly_cleanup(older_than_days: u32) {
    let _ = older_than_days;
}

fn main() {}
