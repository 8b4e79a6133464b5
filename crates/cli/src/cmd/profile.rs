//! `offload profile`.

/// Arguments of `offload profile`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `offload profile`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`offload profile` is not built yet")
}
