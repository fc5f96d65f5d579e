//! `rbuild wait`: block until containers stop, then print their exit codes (docker's
//! `wait`), one line each.

use rbuild_runtime::container::{self, Containers};

/// Flags of `rbuild wait`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The containers (ID, name or ID prefix).
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Run `rbuild wait`.
pub fn run(args: Args, g: &super::global::Global) -> anyhow::Result<i32> {
    let cs = Containers::open(&g.root);
    let mut code = 0;
    for what in &args.containers {
        match cs.resolve(what).and_then(|c| container::wait(&c)) {
            Ok(exit) => super::pull::say(&exit.to_string()),
            Err(e) => {
                eprintln!("Error response from daemon: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}
