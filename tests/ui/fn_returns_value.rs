#[dj::job(queue = "mail")]
fn send_welcome(user_id: i64) -> i64 {
    user_id
}

fn main() {
    // The function stays callable: only the mistake is reported.
    let _ = send_welcome(7);
}
