#[derive(serde::Serialize, serde::Deserialize)]
struct Email {
    to: String,
}

#[dj::job(queue = "mail")]
fn send_welcome(email: Email) {
    let _ = email.to;
}

fn main() {}
