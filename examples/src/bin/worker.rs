//! The example app's worker binary: the whole dj CLI in one line. Its jobs (`FetchFeed`) come
//! from the `dj_examples` library crate; the state gives them the entries database.
//!
//! cargo run -p dj-examples --bin worker -- work --queues feeds

fn state() -> dj::State {
    dj::State::new().with(dj_examples::EntriesDb("feed_entries.sqlite3".into()))
}

dj::main!(state);
