//! Runs — debates and perspectives — as the service keeps them: who may read one
//! ([`access`]), its stored record ([`record`]), what it executes ([`spec`]), launching it in
//! its own task ([`launch`]), following its events as SSE ([`stream`]), ending it when
//! nobody can finish it ([`interrupt`]) and taking it over after a crash ([`recovery`]).
//! A reader's motion is screened first ([`screening`]). HTTP handlers in [`crate::http`]
//! call these; nothing here knows a route.

pub mod access;
pub mod interrupt;
pub mod launch;
pub mod record;
pub mod recovery;
pub mod screening;
pub mod spec;
pub mod stream;

pub use access::{not_found, readable, still_up};
pub use interrupt::interrupt_unfinished;
pub use launch::{Accepted, Launch, launch};
pub use record::{Record, record_of};
pub use spec::RunSpec;
