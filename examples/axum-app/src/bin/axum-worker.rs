//! The worker: dj's whole CLI (`work`, `workoff`, `jobs`, ...). Its job, `send_welcome`, comes
//! from the library, which naming `worker_state` links in; the state gives the job the users
//! table, in the database of DATABASE_URL.
//!
//! DATABASE_URL=postgres://localhost/app cargo run -p dj-axum-app --bin axum-worker -- work

dj::main!(dj_axum_app::worker_state);
