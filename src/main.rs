//! `rbuild`: the command-line front of rbuild. Glue only: flags become validated request
//! types, and the library crates do the work.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
