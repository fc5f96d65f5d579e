//! `rbuild`: the command-line front of rbuild. Glue only: flags become validated request
//! types, and the library crates do the work.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    // The sandbox re-executes this binary as a container's init; that must happen before
    // anything else (no threads, no runtime) runs.
    if let Some(code) = rbuild_runtime::sandbox::init_hook() {
        std::process::exit(code);
    }
    // `run -d` and `start` re-execute it as a container's monitor.
    if let Some(code) = rbuild_runtime::container::monitor::monitor_hook() {
        std::process::exit(code);
    }
    cli::main()
}
