//! A worker whose state is a real `sqlx::PgPool`, built by an async state function inside the
//! worker's runtime from the URL dj resolved (`dj_tests::pool::pool_state`); its jobs share it.

dj::main!(dj_tests::pool::pool_state);
