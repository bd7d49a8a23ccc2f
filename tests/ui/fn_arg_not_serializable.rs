#[derive(Clone)]
struct Email {
    to: String,
}

#[dj::job(queue = "mail")]
fn send_welcome(email: Email) {
    let _ = email.to;
}

fn main() {}
