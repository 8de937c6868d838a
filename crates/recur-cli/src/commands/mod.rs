//! One module per subcommand.

pub mod bench;
pub mod forward;

/// What a subcommand returns: a failure is printed as one line.
pub type CommandResult = Result<(), Box<dyn std::error::Error>>;
