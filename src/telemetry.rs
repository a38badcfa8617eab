//! telemetry: the process's Prometheus recorder and what a metric family
//! is. Each module declares the families it records in its own
//! `metrics.rs` (names as constants, help, unit); `api::metrics` lists
//! them all for the recorder. Each family is described (`# HELP`, unit),
//! histograms get buckets that fit what they measure (so nodes can be
//! combined with `histogram_quantile` over `_bucket`, and an idle node does
//! not report quantiles of zero), and counters exist at zero from the
//! start, so `rate()` and `absent()` work before the first event. The
//! `process_*` families follow the Prometheus client libraries' names.

use std::sync::OnceLock;

use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::warn;

/// What a family is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution, with buckets.
    Histogram(Buckets),
}

/// Bucket boundaries for a histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buckets {
    /// Durations from half a millisecond to ten seconds.
    Seconds,
    /// Counts from one to a thousand and more (batch sizes).
    Count,
}

impl Buckets {
    fn bounds(self) -> &'static [f64] {
        match self {
            Buckets::Seconds => &[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ],
            Buckets::Count => &[
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
            ],
        }
    }
}

/// One family: name, kind, unit, help, and for counters the label sets
/// that exist at zero from the start.
pub struct Def {
    /// The family's name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub family: Family,
    /// Its unit.
    pub unit: Option<Unit>,
    /// `# HELP` text.
    pub help: &'static str,
    /// Label sets registered at zero (counters only); one empty set for
    /// a counter without labels.
    pub zero: &'static [&'static [(&'static str, &'static str)]],
}

/// A counter without labels, at zero from the start.
pub const fn counter(name: &'static str, help: &'static str) -> Def {
    Def {
        name,
        family: Family::Counter,
        unit: None,
        help,
        zero: &[&[]],
    }
}

/// A counter whose label sets in `zero` exist at zero from the start.
pub const fn labelled_counter(
    name: &'static str,
    help: &'static str,
    zero: &'static [&'static [(&'static str, &'static str)]],
) -> Def {
    Def {
        name,
        family: Family::Counter,
        unit: None,
        help,
        zero,
    }
}

/// A gauge.
pub const fn gauge(name: &'static str, help: &'static str) -> Def {
    Def {
        name,
        family: Family::Gauge,
        unit: None,
        help,
        zero: &[],
    }
}

/// A histogram of durations (`_seconds`).
pub const fn seconds(name: &'static str, help: &'static str) -> Def {
    Def {
        name,
        family: Family::Histogram(Buckets::Seconds),
        unit: Some(Unit::Seconds),
        help,
        zero: &[],
    }
}

/// A histogram of counts (batch sizes).
pub const fn count_histogram(name: &'static str, help: &'static str) -> Def {
    Def {
        name,
        family: Family::Histogram(Buckets::Count),
        unit: Some(Unit::Count),
        help,
        zero: &[],
    }
}

/// `shoal_build_info`.
pub const BUILD_INFO: &str = "shoal_build_info";
/// `process_resident_memory_bytes`.
pub const PROCESS_RESIDENT_MEMORY_BYTES: &str = "process_resident_memory_bytes";
/// `process_virtual_memory_bytes`.
pub const PROCESS_VIRTUAL_MEMORY_BYTES: &str = "process_virtual_memory_bytes";
/// `process_cpu_seconds_total`.
pub const PROCESS_CPU_SECONDS_TOTAL: &str = "process_cpu_seconds_total";
/// `process_start_time_seconds`.
pub const PROCESS_START_TIME_SECONDS: &str = "process_start_time_seconds";

/// The families telemetry itself writes: the build and the process.
pub const FAMILIES: &[Def] = &[
    gauge(
        BUILD_INFO,
        "Always 1; the labels say which shoal runs (version).",
    ),
    gauge(
        PROCESS_RESIDENT_MEMORY_BYTES,
        "Resident memory size in bytes.",
    ),
    gauge(
        PROCESS_VIRTUAL_MEMORY_BYTES,
        "Virtual memory size in bytes.",
    ),
    gauge(
        PROCESS_CPU_SECONDS_TOTAL,
        "User and system CPU time spent, in seconds (a counter exported as a gauge).",
    ),
    gauge(
        PROCESS_START_TIME_SECONDS,
        "Start time of the process since the Unix epoch, in seconds.",
    ),
];

/// The process-wide recorder (one per process, shared by in-process
/// nodes), installed on first use with every family of `catalogue`
/// described; later calls get the same recorder whatever they pass.
pub fn handle(catalogue: &'static [&'static [Def]]) -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE.get_or_init(|| install(catalogue)).clone()
}

fn install(catalogue: &'static [&'static [Def]]) -> Option<PrometheusHandle> {
    let mut builder = PrometheusBuilder::new();
    for def in catalogue.iter().copied().flatten() {
        if let Family::Histogram(b) = def.family {
            builder =
                match builder.set_buckets_for_metric(Matcher::Full(def.name.into()), b.bounds()) {
                    Ok(b) => b,
                    Err(e) => {
                        warn!("metrics recorder not installed: {e}");
                        return None;
                    }
                };
        }
    }
    let handle = match builder.install_recorder() {
        Ok(h) => h,
        Err(e) => {
            warn!("metrics recorder not installed: {e}");
            return None;
        }
    };
    for def in catalogue.iter().copied().flatten() {
        let (name, help) = (def.name, def.help);
        match (def.family, def.unit) {
            (Family::Counter, Some(u)) => ::metrics::describe_counter!(name, u, help),
            (Family::Counter, None) => ::metrics::describe_counter!(name, help),
            (Family::Gauge, Some(u)) => ::metrics::describe_gauge!(name, u, help),
            (Family::Gauge, None) => ::metrics::describe_gauge!(name, help),
            (Family::Histogram(_), Some(u)) => ::metrics::describe_histogram!(name, u, help),
            (Family::Histogram(_), None) => ::metrics::describe_histogram!(name, help),
        }
        if def.family == Family::Counter {
            for labels in def.zero {
                let labels: Vec<metrics::Label> = labels
                    .iter()
                    .map(|(k, v)| metrics::Label::new(*k, *v))
                    .collect();
                ::metrics::counter!(name, labels).increment(0);
            }
        }
    }
    ::metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Some(handle)
}
