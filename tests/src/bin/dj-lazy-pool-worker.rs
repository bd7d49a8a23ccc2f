//! A worker whose sync state function makes a `sqlx::PgPool` with `connect_lazy`, as programs
//! written before async state functions do (`dj_tests::pool::lazy_pool_state`).

dj::main!(dj_tests::pool::lazy_pool_state);
