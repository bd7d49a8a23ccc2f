//! dj in an axum service. `POST /signup` inserts a user and enqueues the user's welcome job in
//! one sqlx transaction, so the job exists exactly when the user does; `GET /jobs` lists the
//! queue; the worker binary (`dj::main!`) performs [`send_welcome`], which marks the user
//! welcomed.
//!
//! By file: `users` is the application's table and the signup transaction, `welcome` the job
//! and the state the worker gives it (a `PgPool`), `routes` the HTTP side.

mod routes;
mod users;
mod welcome;

pub use routes::app;
pub use users::{prepare_database, sign_up, SetupError, Signup, SignupError};
pub use welcome::{send_welcome, worker_state, SendWelcome};
