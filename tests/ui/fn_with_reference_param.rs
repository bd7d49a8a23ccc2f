#[dj::job(queue = "mail")]
fn send_welcome(user_id: i64, email: &str) {
    let _ = (user_id, email);
}

fn main() {
    // The function stays callable: only the mistake is reported.
    send_welcome(7, "a@example.com");
}
