//! What the benchmarks that run real `shoal` processes share: finding the
//! binary and free loopback ports. Included with `#[path]`, as the tests
//! include `tests/common`.

use std::path::{Path, PathBuf};

/// The `shoal` binary built beside the example (target/PROFILE/shoal);
/// `SHOAL_BIN` overrides. Exits with a hint when it is missing.
pub fn shoal_bin() -> PathBuf {
    if let Ok(p) = std::env::var("SHOAL_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("current exe");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("shoal"))
        .expect("target dir");
    if !bin.exists() {
        eprintln!(
            "{} not found; run `cargo build --release --bins --examples` first",
            bin.display()
        );
        std::process::exit(1);
    }
    bin
}

/// `n` distinct free loopback ports (bound together, then released).
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("free port"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect()
}
