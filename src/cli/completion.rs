//! `rbuild completion SHELL`: a completion script, generated from the command definition
//! itself (so it always knows every subcommand and flag).

use clap::CommandFactory;

/// Flags of `rbuild completion`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The shell: bash, zsh or fish.
    #[arg(value_parser = ["bash", "zsh", "fish"])]
    pub shell: String,
}

/// Run `rbuild completion`: the script goes to stdout.
pub fn run(args: Args) -> anyhow::Result<i32> {
    use clap_complete::Shell;
    let shell = match args.shell.as_str() {
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        _ => Shell::Fish,
    };
    let mut cmd = super::Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut cmd, "rbuild", &mut out);
    Ok(0)
}
