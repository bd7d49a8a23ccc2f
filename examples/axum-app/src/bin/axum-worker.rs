//! The worker: dj's whole CLI (`work`, `workoff`, `jobs`, ...). Its job, `send_welcome`, comes
//! from the library, which naming `worker_state` links in. `worker_state` is async: inside the
//! worker's runtime it connects a `PgPool` to the database dj works (`--database-url`, else
//! DATABASE_URL), which every job shares.
//!
//! DATABASE_URL=postgres://localhost/app cargo run -p dj-axum-app --bin axum-worker -- work

dj::main!(dj_axum_app::worker_state);
