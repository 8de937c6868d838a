//! Training above the layers: a [`Trainer`] with exact checkpoints, and truncated backpropagation through time.

mod tbptt;
mod trainer;

pub use crate::model::CarriedState;
pub use tbptt::{contiguous_streams, windows};
pub use trainer::{OptimizerKind, ScheduleKind, StepReport, Targets, Trainer, TrainerConfig};
