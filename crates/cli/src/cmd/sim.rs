//! `offload sim`.

/// Arguments of `offload sim`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `offload sim`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`offload sim` is not built yet")
}
