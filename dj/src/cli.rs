pub fn main(_setup: fn() -> crate::State) -> std::process::ExitCode { std::process::ExitCode::SUCCESS }
