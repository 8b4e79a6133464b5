//! `offload emulate`.

/// Arguments of `offload emulate`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `offload emulate`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`offload emulate` is not built yet")
}
