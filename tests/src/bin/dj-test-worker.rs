//! The worker binary the process tests start: dj's generated CLI, with the job types of the
//! `dj_tests` library crate (a separate crate, found through inventory).

dj::main!(dj_tests::state);
