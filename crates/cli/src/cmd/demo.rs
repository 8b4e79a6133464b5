//! `offload demo`.

/// Arguments of `offload demo`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `offload demo`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`offload demo` is not built yet")
}
