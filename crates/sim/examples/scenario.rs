//! Writes a generated district as a scenario file, for `rollcall scenario run`.
//!
//! ```text
//! cargo run --release -p rollcall-sim --example scenario -- [STUDENTS] [DAYS] [SEED] > district.json
//! ```

use rollcall_sim::{generate, SimConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut cfg = SimConfig::default();
    if let Some(n) = args.next() {
        cfg.students = n.parse().expect("STUDENTS is a number");
    }
    if let Some(d) = args.next() {
        cfg.days = d.parse().expect("DAYS is a number");
    }
    if let Some(s) = args.next() {
        cfg.seed = s.parse().expect("SEED is a number");
    }
    let world = generate(&cfg);
    let name = format!("simulated district: {} students, {} days from {}, seed {}", cfg.students, cfg.days, cfg.start, cfg.seed);
    let scenario = world.to_scenario_json(&name, "mmsd");
    serde_json::to_writer(std::io::stdout().lock(), &scenario).expect("writing to stdout");
    println!();
}
