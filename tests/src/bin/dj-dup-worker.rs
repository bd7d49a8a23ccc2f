//! A worker binary with a mistake: two job types registered under one name. Its worker must
//! refuse to start, naming both.

mod first {
    use serde::{Deserialize, Serialize};

    #[derive(dj::Job, Serialize, Deserialize)]
    #[job(name = "Twin")]
    pub struct One;

    impl dj::Perform for One {
        type Error = std::convert::Infallible;
        fn perform(&self, _ctx: &dj::Context) -> Result<(), Self::Error> {
            Ok(())
        }
    }
}

mod second {
    use serde::{Deserialize, Serialize};

    #[derive(dj::Job, Serialize, Deserialize)]
    #[job(name = "Twin")]
    pub struct Two;

    impl dj::Perform for Two {
        type Error = std::convert::Infallible;
        fn perform(&self, _ctx: &dj::Context) -> Result<(), Self::Error> {
            Ok(())
        }
    }
}

dj::main!();
