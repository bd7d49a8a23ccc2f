#[dj::job(queue = "mail")]
fn send_welcome(user: impl std::fmt::Display) {
    let _ = user.to_string();
}

fn main() {}
