//! `rbuild man`: man pages generated from the command definition itself: `rbuild(1)` and
//! one `rbuild-COMMAND(1)` per subcommand.

use clap::CommandFactory;
use std::path::PathBuf;

/// Flags of `rbuild man`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Write every page (rbuild.1, rbuild-build.1, …) into this directory instead.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The page of this subcommand (default: rbuild(1)), printed to stdout.
    #[arg(value_name = "COMMAND", conflicts_with = "dir")]
    pub command: Option<String>,
}

/// Every page: (file name, roff text).
fn pages() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let root = super::Cli::command();
    let version: &'static str = Box::leak(root.get_version().unwrap_or_default().to_string().into_boxed_str());
    let mut out = Vec::new();
    let mut buf = Vec::new();
    clap_mangen::Man::new(root.clone()).render(&mut buf)?;
    out.push(("rbuild.1".to_string(), buf));
    for sub in root.get_subcommands() {
        // clap names are &'static str; this process prints the pages and exits.
        let name: &'static str = Box::leak(format!("rbuild-{}", sub.get_name()).into_boxed_str());
        let mut cmd = sub.clone().name(name);
        if !version.is_empty() {
            cmd = cmd.version(version);
        }
        let mut buf = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut buf)?;
        out.push((format!("{name}.1"), buf));
    }
    Ok(out)
}

/// Run `rbuild man`.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let pages = pages()?;
    if let Some(dir) = &args.dir {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
        for (name, text) in &pages {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(|e| anyhow::anyhow!("writing {}: {e}", p.display()))?;
            println!("{}", p.display());
        }
        return Ok(0);
    }
    let want = match &args.command {
        Some(c) => format!("rbuild-{c}.1"),
        None => "rbuild.1".to_string(),
    };
    let Some((_, text)) = pages.iter().find(|(n, _)| *n == want) else {
        anyhow::bail!("no command {:?}: see 'rbuild --help'", args.command.as_deref().unwrap_or_default());
    };
    use std::io::Write;
    std::io::stdout().lock().write_all(text)?;
    Ok(0)
}
