#[dj::job(queue = "mail")]
fn send_welcome(user_id: i64) -> std::io::Result<()> {
    let _ = user_id;
    Ok(())
}

fn main() {}
