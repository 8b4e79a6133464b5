//! The `offload` command line: one subcommand per job, each in its own module under `cmd/`.

use clap::{Parser, Subcommand};

mod cmd;

/// Split computing for wearables: simulate, evaluate, train, profile, serve and run the agent.
#[derive(Parser, Debug)]
#[command(name = "offload", version, about, long_about = None)]
struct Cli {
    /// Log filter (tracing-subscriber syntax), e.g. `info` or `offload=debug`.
    #[arg(long, global = true, default_value = "info", env = "OFFLOAD_LOG")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Inspect, generate and convert bandwidth traces.
    Trace(cmd::trace::Args),
    /// Replay one trace with one policy and write per-frame records and a summary.
    Sim(cmd::sim::Args),
    /// Replay many traces with many policies in parallel and write tables, a report and plots.
    Eval(cmd::eval::Args),
    /// Train the split model and its layered codec.
    Train(cmd::train::Args),
    /// Measure a trained model and write the operating profile the simulator reads.
    Profile(cmd::profile::Args),
    /// Regenerate a results document (codec, detector).
    Report(cmd::report::Args),
    /// Run the edge server.
    Serve(cmd::serve::Args),
    /// Run the wearable agent against an edge server.
    Agent(cmd::agent::Args),
    /// Run the trace-driven user-space link emulator (a UDP relay).
    Emulate(cmd::emulate::Args),
    /// Start server, emulator and agent on loopback and show a run end to end.
    Demo(cmd::demo::Args),
    /// Run the SSD-MobileNetV2 COCO detector (candle) on images and print the detections.
    Detect(cmd::detect::Args),
    /// Convert the SSD-MobileNetV2 frozen TF graph to safetensors + a manifest.
    ConvertDetector(cmd::convert_detector::Args),
    /// Distil the layered codec on the detector's stride-16 tensor from the full detector.
    TrainDetector(cmd::train_detector::Args),
    /// Run the simulator and the emulated system on the same traces and compare them per frame.
    Compare(cmd::compare::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log)?)
        .with_writer(std::io::stderr)
        .init();
    if matches!(
        cli.command,
        Command::Trace(_)
            | Command::Sim(_)
            | Command::Eval(_)
            | Command::Profile(_)
            | Command::Report(_)
            | Command::Detect(_)
            | Command::Compare(_)
    ) {
        end_quietly_on_a_closed_pipe();
    }
    match cli.command {
        Command::Trace(a) => cmd::trace::run(a),
        Command::Sim(a) => cmd::sim::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Train(a) => cmd::train::run(a),
        Command::Profile(a) => cmd::profile::run(a),
        Command::Report(a) => cmd::report::run(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Agent(a) => cmd::agent::run(a),
        Command::Emulate(a) => cmd::emulate::run(a),
        Command::Demo(a) => cmd::demo::run(a),
        Command::Detect(a) => cmd::detect::run(a),
        Command::ConvertDetector(a) => cmd::convert_detector::run(a),
        Command::TrainDetector(a) => cmd::train_detector::run(a),
        Command::Compare(a) => cmd::compare::run(a),
    }
}

/// A command whose output is piped into `head` and the like ends when the reader does, as other
/// Unix tools do. Rust ignores SIGPIPE, so the first `println!` after the reader closed would
/// panic. Not for the networked commands (serve, agent, emulate, demo): their sockets are UDP,
/// but a server must not die with the terminal it was started from.
fn end_quietly_on_a_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: restores the default action of one signal before any thread is started; no
    // handler of this program's is replaced.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
