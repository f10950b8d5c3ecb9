//! Runs — debates and perspectives — as the service keeps them: who may read one
//! ([`access`]), its stored record ([`record`]), what it executes ([`spec`]), launching it in
//! its own task ([`launch`]), following its events as SSE ([`stream`]), ending it when
//! nobody can finish it ([`interrupt`]), taking it over after a crash ([`recovery`]) and
//! judging a finished debate again ([`judge_again`]).
//! A reader's motion is screened first ([`screening`]); a story's debates' common beginning
//! is computed ahead when a reader opens it ([`prefill`]). HTTP handlers in [`crate::http`]
//! call these; nothing here knows a route.

pub mod access;
pub mod interrupt;
pub mod judge_again;
pub mod launch;
pub mod prefill;
pub mod record;
pub mod recovery;
pub mod screening;
pub mod spec;
pub mod stream;

pub use access::{not_found, readable, still_up};
pub use interrupt::interrupt_unfinished;
pub use judge_again::judge_again;
pub use launch::{Accepted, Launch, launch};
pub use record::{Record, record_of};
pub use spec::RunSpec;
