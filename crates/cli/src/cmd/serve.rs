//! `offload serve`.

/// Arguments of `offload serve`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `offload serve`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`offload serve` is not built yet")
}
