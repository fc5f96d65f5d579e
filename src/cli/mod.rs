//! Command-line parsing and dispatch: one file per subcommand.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

pub mod build;
pub mod check;
pub mod copy;
pub mod global;
pub mod images;
pub mod import;
pub mod inspect;
pub mod load;
pub mod login;
pub mod logout;
pub mod prune;
pub mod pull;
pub mod push;
pub mod rmi;
pub mod run;
pub mod save;
pub mod tag;

/// rbuild: build, push, pull and run OCI container images, no daemon needed.
#[derive(Parser, Debug)]
#[command(name = "rbuild", version, about, propagate_version = true)]
pub struct Cli {
    /// Where images, blobs, cache and snapshots live (default: $XDG_DATA_HOME/rbuild, or
    /// /var/lib/rbuild for root).
    #[arg(long, global = true, env = "RBUILD_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Log more: -D for debug, -DD for trace (or set RUST_LOG).
    #[arg(short = 'D', long = "debug", visible_alias = "verbose", global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// Every subcommand.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build an image from a Dockerfile (also: `rbuild [FLAGS] CONTEXT`).
    Build(build::Args),
    /// Parse, lower and lint a Dockerfile without building it.
    Check(check::Args),
    /// List images in the local store.
    Images(images::Args),
    /// Show an image's manifest, config and store details as JSON.
    Inspect(inspect::Args),
    /// Give an image another name.
    Tag(tag::Args),
    /// Remove image names (and what only they reach).
    Rmi(rmi::Args),
    /// Remove blobs no tag reaches.
    Prune(prune::Args),
    /// Write images to an OCI or docker-archive tar.
    Save(save::Args),
    /// Read images from an OCI or docker-archive tar.
    Load(load::Args),
    /// Make an image from a root filesystem tarball.
    Import(import::Args),
    /// Fetch an image from a registry into the local store.
    Pull(pull::Args),
    /// Send an image from the local store to a registry.
    Push(push::Args),
    /// Copy an image from one registry to another, without the local store.
    Copy(copy::Args),
    /// Save credentials for a registry.
    Login(login::Args),
    /// Forget credentials for a registry.
    Logout(logout::Args),
    /// Run a command in a new container from an image.
    Run(run::Args),
}

/// Words that are subcommands; anything else in first position means `build`.
const SUBCOMMANDS: &[&str] = &[
    "build", "check", "images", "inspect", "tag", "rmi", "prune", "save", "load", "import", "pull", "push", "copy",
    "login", "logout", "run", "help",
];

/// `rbuild -t app .` is `rbuild build -t app .`: insert `build` when the first word after
/// the global flags is neither a subcommand nor a flag that stands alone.
fn with_implicit_build(mut argv: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut i = 1;
    while i < argv.len() {
        let a = argv[i].to_string_lossy().into_owned();
        match a.as_str() {
            "--root" => i += 2,
            s if s.starts_with("--root=") || s == "-D" || s == "-DD" || s == "--debug" || s == "--verbose" => i += 1,
            "-h" | "--help" | "-V" | "--version" => return argv,
            s if SUBCOMMANDS.contains(&s) => return argv,
            _ => {
                argv.insert(i, "build".into());
                return argv;
            }
        }
    }
    argv
}

/// Parse the command line, run the subcommand, and turn its outcome into an exit code.
pub fn main() -> ExitCode {
    let argv = with_implicit_build(std::env::args_os().collect());
    let cli = Cli::parse_from(argv);
    global::init_logging(cli.verbose);
    let g = global::Global::new(cli.root.clone());
    let result = match cli.command {
        Command::Build(a) => build::run(a, &g),
        Command::Check(a) => check::run(a, &g),
        Command::Images(a) => images::run(a, &g),
        Command::Inspect(a) => inspect::run(a, &g),
        Command::Tag(a) => tag::run(a, &g),
        Command::Rmi(a) => rmi::run(a, &g),
        Command::Prune(a) => prune::run(a, &g),
        Command::Save(a) => save::run(a, &g),
        Command::Load(a) => load::run(a, &g),
        Command::Import(a) => import::run(a, &g),
        Command::Pull(a) => pull::run(a, &g),
        Command::Push(a) => push::run(a, &g),
        Command::Copy(a) => copy::run(a, &g),
        Command::Login(a) => login::run(a, &g),
        Command::Logout(a) => logout::run(a, &g),
        Command::Run(a) => run::run(a, &g),
    };
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("error: {}", global::render_error(&e));
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(v: &[&str]) -> Vec<String> {
        with_implicit_build(v.iter().map(|s| s.into()).collect())
            .into_iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn bare_flags_mean_build() {
        assert_eq!(words(&["rbuild", "-t", "app", "."]), ["rbuild", "build", "-t", "app", "."]);
        assert_eq!(words(&["rbuild", "--root", "/x", "."]), ["rbuild", "--root", "/x", "build", "."]);
        assert_eq!(words(&["rbuild", "images"]), ["rbuild", "images"]);
        assert_eq!(words(&["rbuild", "--help"]), ["rbuild", "--help"]);
        assert_eq!(words(&["rbuild"]), ["rbuild"]);
    }
}
