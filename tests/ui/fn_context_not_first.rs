#[dj::job(queue = "mail")]
fn send_welcome(user_id: i64, ctx: &dj::Context) {
    let _ = (user_id, ctx);
}

fn main() {}
