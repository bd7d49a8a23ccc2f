use std::rc::Rc;

#[dj::job]
async fn count_visits(page: String) {
    let counter = Rc::new(page);
    tokio::task::yield_now().await;
    let _ = counter;
}

fn main() {}
