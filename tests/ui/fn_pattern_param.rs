#[dj::job(queue = "mail")]
fn send_welcome((user_id, email): (i64, String)) {
    let _ = (user_id, email);
}

fn main() {}
