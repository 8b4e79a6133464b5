//! `offload eval`.

/// Arguments of `offload eval`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `offload eval`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`offload eval` is not built yet")
}
