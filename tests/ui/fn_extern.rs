#[dj::job(queue = "mail")]
extern "C" fn send_welcome(user_id: i64) {
    let _ = user_id;
}

fn main() {}
