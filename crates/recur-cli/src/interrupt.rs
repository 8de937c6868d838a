//! Ctrl-C: the first one raises a flag that the training loop checks between batches (it then saves a checkpoint
//! and exits); a second one exits at once.

use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

/// The stop flag, with the Ctrl-C handler installed on first use.
pub fn flag() -> &'static AtomicBool {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Without a handler (another one already installed) Ctrl-C simply ends the process as usual.
        let _ = ctrlc::set_handler(|| {
            if STOP.swap(true, Ordering::SeqCst) {
                eprintln!("interrupted twice: exiting without saving");
                std::process::exit(EXIT_CODE);
            }
            eprintln!("interrupted: stopping after this batch (Ctrl-C again to quit at once)");
        });
    });
    &STOP
}

/// The shell's convention for a process ended by SIGINT.
pub const EXIT_CODE: i32 = 130;

/// Exits after an interruption whose work has been saved.
pub fn exit() -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    std::process::exit(EXIT_CODE)
}
