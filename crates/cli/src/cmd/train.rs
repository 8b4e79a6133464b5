//! `offload train`.

/// Arguments of `offload train`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `offload train`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`offload train` is not built yet")
}
