#[dj::job(queue_name = "mail")]
fn send_welcome(user_id: i64) {
    let _ = user_id;
}

fn main() {
    // The function stays callable: only the mistake is reported.
    send_welcome(7);
}
