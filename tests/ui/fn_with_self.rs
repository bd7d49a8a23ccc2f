struct Mailer;

impl Mailer {
    #[dj::job(queue = "mail")]
    fn send_welcome(&self, user_id: i64) {
        let _ = user_id;
    }
}

fn main() {}
