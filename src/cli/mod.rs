//! Command-line parsing and dispatch: one file per subcommand.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

pub mod build;
pub mod check;
pub mod commit;
pub mod completion;
pub mod container;
pub mod copy;
pub mod cp;
pub mod create;
pub mod diff;
#[cfg(test)]
mod docs_check;
pub mod exec;
pub mod export;
pub mod global;
pub mod images;
pub mod import;
pub mod inspect;
pub mod kill;
pub mod limits;
pub mod load;
pub mod login;
pub mod logout;
pub mod logs;
pub mod man;
pub mod pause;
pub mod prune;
pub mod ps;
pub mod pull;
pub mod push;
pub mod rename;
pub mod restart;
pub mod rm;
pub mod rmi;
pub mod run;
pub mod save;
pub mod start;
pub mod stats;
pub mod stop;
pub mod tag;
pub mod top;
pub mod unpause;
pub mod update;
pub mod volume;
pub mod wait;

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
    /// Remove images: a tag, or an image by ID with its tags (and the blobs only it used).
    Rmi(rmi::Args),
    /// Remove untagged images and the blobs no image reaches.
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
    /// List containers.
    Ps(ps::Args),
    /// Show what a container printed.
    Logs(logs::Args),
    /// Give a container another name.
    Rename(rename::Args),
    /// Show the processes running in a container.
    Top(top::Args),
    /// Create a container from an image, without starting it.
    Create(create::Args),
    /// Start created or stopped containers.
    Start(start::Args),
    /// Stop running containers (the stop signal, then SIGKILL after a timeout).
    Stop(stop::Args),
    /// Stop then start containers.
    Restart(restart::Args),
    /// Send a signal to running containers.
    Kill(kill::Args),
    /// Remove containers.
    Rm(rm::Args),
    /// Wait for containers to stop and print their exit codes.
    Wait(wait::Args),
    /// Freeze every process of running containers.
    Pause(pause::Args),
    /// Thaw paused containers.
    Unpause(unpause::Args),
    /// Show containers' CPU, memory and pids use, from their cgroups.
    Stats(stats::Args),
    /// Change containers' resource limits (and restart policy).
    Update(update::Args),
    /// Manage containers (`container ls`, `container prune`, ... as docker spells them).
    Container(container::Args),
    /// Run a command in a running container.
    Exec(exec::Args),
    /// Copy files between a container and the host.
    Cp(cp::Args),
    /// Show what a container changed in its filesystem.
    Diff(diff::Args),
    /// Make an image from a container's changes.
    Commit(commit::Args),
    /// Write a container's filesystem as a tar.
    Export(export::Args),
    /// Manage volumes: create, ls, inspect, rm, prune.
    Volume(volume::Args),
    /// Print a shell completion script (bash, zsh or fish).
    Completion(completion::Args),
    /// Print a man page, or write them all with --dir.
    Man(man::Args),
}

/// What the first word after the global flags makes of the command line.
#[derive(Debug, PartialEq, Eq)]
enum FirstWord {
    /// A subcommand, a help/version flag, or nothing: clap parses the line as it is.
    AsIs,
    /// `rbuild [FLAGS] CONTEXT`: `build` goes in at this position.
    ImplicitBuild(usize),
    /// A word that is neither a subcommand nor a build context.
    Unknown(String),
}

/// Does `word` name a build context: an existing path, `-` (a tar on stdin) or a URL?
fn is_context(word: &str) -> bool {
    word == "-"
        || std::path::Path::new(word).exists()
        || ["http://", "https://", "git://", "git@", "ssh://"].iter().any(|p| word.starts_with(p))
}

/// `rbuild -t app .` is `rbuild build -t app .`: a flag, or a word that names a build
/// context, where a subcommand would be means `build`. Any other word is an unknown command
/// (never a context to read a Dockerfile from).
fn classify(argv: &[std::ffi::OsString], subcommands: &[String]) -> FirstWord {
    let mut i = 1;
    while i < argv.len() {
        let a = argv[i].to_string_lossy();
        match a.as_ref() {
            "--root" => i += 2,
            s if s.starts_with("--root=") || s == "-D" || s == "-DD" || s == "--debug" || s == "--verbose" => i += 1,
            "-h" | "--help" | "-V" | "--version" => return FirstWord::AsIs,
            s if subcommands.iter().any(|c| c == s) => return FirstWord::AsIs,
            s if s.starts_with('-') && s != "-" => return FirstWord::ImplicitBuild(i),
            s if is_context(s) => return FirstWord::ImplicitBuild(i),
            s => return FirstWord::Unknown(s.to_string()),
        }
    }
    FirstWord::AsIs
}

/// Edit distance between two short words (for "did you mean").
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb { prev } else { 1 + prev.min(row[j]).min(row[j + 1]) };
            prev = cur;
        }
    }
    row[b.len()]
}

/// The message for an unknown first word, with the closest subcommand when one is close.
fn unknown_command(word: &str, subcommands: &[String]) -> String {
    let best = subcommands
        .iter()
        .map(|c| (distance(word, c), c))
        .filter(|(d, c)| *d <= 1.max((c.len() + 1) / 3))
        .min_by_key(|(d, _)| *d);
    let hint = match best {
        Some((_, c)) => format!("did you mean {c}?"),
        None => "see 'rbuild --help'".to_string(),
    };
    // Not a path either (an existing directory would have been built).
    format!("unknown command '{word}': {hint}")
}

/// Every subcommand name and alias, from the command definition itself.
fn subcommand_names() -> Vec<String> {
    let cmd = <Cli as clap::CommandFactory>::command();
    let mut out: Vec<String> = vec!["help".to_string()];
    for c in cmd.get_subcommands() {
        out.push(c.get_name().to_string());
        out.extend(c.get_all_aliases().map(str::to_string));
    }
    out
}

/// Run one subcommand.
pub(crate) fn dispatch(command: Command, g: &global::Global) -> anyhow::Result<i32> {
    match command {
        Command::Build(a) => build::run(a, g),
        Command::Check(a) => check::run(a, g),
        Command::Images(a) => images::run(a, g),
        Command::Inspect(a) => inspect::run(a, g),
        Command::Tag(a) => tag::run(a, g),
        Command::Rmi(a) => rmi::run(a, g),
        Command::Prune(a) => prune::run(a, g),
        Command::Save(a) => save::run(a, g),
        Command::Load(a) => load::run(a, g),
        Command::Import(a) => import::run(a, g),
        Command::Pull(a) => pull::run(a, g),
        Command::Push(a) => push::run(a, g),
        Command::Copy(a) => copy::run(a, g),
        Command::Login(a) => login::run(a, g),
        Command::Logout(a) => logout::run(a, g),
        Command::Run(a) => run::run(a, g),
        Command::Create(a) => create::run(a, g),
        Command::Start(a) => start::run(a, g),
        Command::Stop(a) => stop::run(a, g),
        Command::Restart(a) => restart::run(a, g),
        Command::Kill(a) => kill::run(a, g),
        Command::Rm(a) => rm::run(a, g),
        Command::Wait(a) => wait::run(a, g),
        Command::Pause(a) => pause::run(a, g),
        Command::Unpause(a) => unpause::run(a, g),
        Command::Stats(a) => stats::run(a, g),
        Command::Update(a) => update::run(a, g),
        Command::Container(a) => container::run(a, g),
        Command::Ps(a) => ps::run(a, g),
        Command::Logs(a) => logs::run(a, g),
        Command::Rename(a) => rename::run(a, g),
        Command::Top(a) => top::run(a, g),
        Command::Exec(a) => exec::run(a, g),
        Command::Cp(a) => cp::run(a, g),
        Command::Diff(a) => diff::run(a, g),
        Command::Commit(a) => commit::run(a, g),
        Command::Export(a) => export::run(a, g),
        Command::Volume(a) => volume::run(a, g),
        Command::Completion(a) => completion::run(a),
        Command::Man(a) => man::run(a),
    }
}

/// Parse the command line, run the subcommand, and turn its outcome into an exit code.
pub fn main() -> ExitCode {
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let subcommands = subcommand_names();
    match classify(&argv, &subcommands) {
        FirstWord::AsIs => {}
        FirstWord::ImplicitBuild(i) => argv.insert(i, "build".into()),
        FirstWord::Unknown(word) => {
            eprintln!("error: {}", unknown_command(&word, &subcommands));
            return ExitCode::from(2);
        }
    }
    let cli = Cli::parse_from(argv);
    global::init_logging(cli.verbose);
    let g = global::Global::new(cli.root.clone());
    let result = dispatch(cli.command, &g);
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

    fn first(v: &[&str]) -> FirstWord {
        let argv: Vec<std::ffi::OsString> = v.iter().map(|s| s.into()).collect();
        classify(&argv, &subcommand_names())
    }

    #[test]
    fn bare_flags_and_contexts_mean_build() {
        assert_eq!(first(&["rbuild", "-t", "app", "."]), FirstWord::ImplicitBuild(1));
        assert_eq!(first(&["rbuild", "--root", "/x", "."]), FirstWord::ImplicitBuild(3));
        assert_eq!(first(&["rbuild", "-"]), FirstWord::ImplicitBuild(1));
        assert_eq!(first(&["rbuild", "https://example.invalid/repo.git"]), FirstWord::ImplicitBuild(1));
        assert_eq!(first(&["rbuild", "images"]), FirstWord::AsIs);
        assert_eq!(first(&["rbuild", "--help"]), FirstWord::AsIs);
        assert_eq!(first(&["rbuild"]), FirstWord::AsIs);
    }

    #[test]
    fn other_words_are_unknown_commands() {
        assert_eq!(first(&["rbuild", "xyz"]), FirstWord::Unknown("xyz".into()));
        assert_eq!(first(&["rbuild", "-D", "imags"]), FirstWord::Unknown("imags".into()));
        let names = subcommand_names();
        assert!(unknown_command("imags", &names).contains("did you mean images?"));
        assert!(unknown_command("biuld", &names).contains("did you mean build?"));
        assert!(!unknown_command("xyz", &names).contains("did you mean"));
    }
}
