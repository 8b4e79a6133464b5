//! `offload agent`.

/// Arguments of `offload agent`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `offload agent`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`offload agent` is not built yet")
}
