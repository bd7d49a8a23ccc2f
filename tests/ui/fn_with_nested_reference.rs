#[dj::job(queue = "mail")]
fn send_welcome(user_ids: Vec<&i64>) {
    let _ = user_ids;
}

fn main() {}
