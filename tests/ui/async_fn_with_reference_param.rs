#[dj::job]
async fn send_welcome(email: &str) {
    let _ = email;
}

fn main() {}
