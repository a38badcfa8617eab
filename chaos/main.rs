//! `shoal-chaos`: runs fault scenarios against a cluster of real `shoal agent`
//! processes and checks that nothing acknowledged was lost.

mod linearizability;

fn main() {
    eprintln!("usage: shoal-chaos run chaos/scenarios/NAME.toml");
    std::process::exit(2);
}
