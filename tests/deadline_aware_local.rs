//! deadline-aware's two local rules on the Fashion-MNIST profile, whose local path (0.14 ms,
//! 91.3 %) is more accurate than any layer prefix: the issue's rule (local only when nothing
//! arrives in time) offloads on a good real uplink; `local_by_value` runs locally instead.

use std::path::Path;

use offload_controller::Profile;
use offload_policies::PolicyConfig;
use offload_sim::trace::{LoadOptions, Trace};
use offload_sim::{SimConfig, Summary, simulate};

fn run(trace: &Trace, config: PolicyConfig) -> Summary {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/fmnist.toml");
    let profile = Profile::load(&path).expect("the Fashion-MNIST profile loads");
    simulate(
        trace,
        &profile,
        config.build(),
        &SimConfig::default(),
        |_| {},
    )
}

#[test]
fn local_by_value_is_opt_in() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/traces/5g-mmwave-uplink-nuwins/throughput/walking/lte/away.list");
    let trace = Trace::load(&file, &LoadOptions::default()).expect("NUWiNS trace");
    let preset = offload_policies::preset("deadline-aware").unwrap();
    let PolicyConfig::DeadlineAware { local_by_value, .. } = preset else {
        panic!("the deadline-aware preset is {preset:?}");
    };
    assert!(!local_by_value, "the preset keeps the issue's rule");
    let mut by_value = preset.clone();
    if let PolicyConfig::DeadlineAware { local_by_value, .. } = &mut by_value {
        *local_by_value = true;
    }
    let issue_rule = run(&trace, preset);
    let valued = run(&trace, by_value);
    assert!(
        issue_rule.offload_fraction > 0.9,
        "issue's rule offloads {:.3} of frames",
        issue_rule.offload_fraction
    );
    // What it still sends are the prober's base layers (at most one per 0.2 s without a sample).
    assert!(
        valued.offload_fraction < 0.2,
        "local_by_value offloads {:.3} of frames",
        valued.offload_fraction
    );
    assert!(
        valued.accuracy > issue_rule.accuracy,
        "{valued:?} vs {issue_rule:?}"
    );
}
