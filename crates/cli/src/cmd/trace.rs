//! `offload trace`.

/// Arguments of `offload trace`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `offload trace`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`offload trace` is not built yet")
}
