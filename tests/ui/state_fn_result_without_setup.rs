// A sync state function that can fail takes `dj::Setup`: `fn() -> Result<State, E>` is not
// one of the accepted shapes.

fn state() -> Result<dj::State, std::io::Error> {
    Ok(dj::State::new())
}

dj::main!(state);
