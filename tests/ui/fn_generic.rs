#[dj::job(queue = "mail")]
fn send_welcome<T: std::fmt::Display>(user: T) {
    let _ = user.to_string();
}

fn main() {
    // The function stays callable: only the mistake is reported.
    send_welcome(7);
}
