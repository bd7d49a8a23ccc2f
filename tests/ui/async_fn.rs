#[dj::job(queue = "mail")]
async fn send_welcome(user_id: i64) {
    let _ = user_id;
}

fn main() {}
