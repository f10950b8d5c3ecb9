//! The `crossfire` binary's integration tests, one test executable (as ripgrep's) so the
//! service links once: each module runs the built binary as its own process — the command
//! line (`cli`), the embedded model (`model`), `crossfire serve` (`serve`), and the reader's
//! pages in a real browser (`browser`).

mod browser;
mod cli;
mod model;
mod serve;
