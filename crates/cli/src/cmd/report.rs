//! `offload report`.

/// Arguments of `offload report`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `offload report`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`offload report` is not built yet")
}
