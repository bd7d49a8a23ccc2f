#[dj::job(queue = "mail")]
struct SendWelcome {
    user_id: i64,
}

fn main() {}
