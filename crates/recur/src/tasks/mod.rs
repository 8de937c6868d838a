//! Built-in synthetic tasks, generated in code from a seed (no downloads), for examples, tests and demos.

mod adding;

pub use adding::{AddingBatch, adding_problem};
