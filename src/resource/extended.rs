//! Container resources beside cpu and memory: `ephemeral-storage` and
//! extended resources (`nvidia.com/gpu`, `example.com/dongle`), with
//! Kubernetes' rules for their names and amounts. Shared by the manifest
//! checks, the scheduler and the agent's Node object.

use super::types::{QuantityError, parse_nanos};
use crate::resource::names::is_dns_subdomain;

/// The local disk a container may use: writable layer, logs, emptyDirs.
pub const EPHEMERAL_STORAGE: &str = "ephemeral-storage";

/// Why an extended resource name or count is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtendedError {
    /// Not `<dns-subdomain>/<name>`.
    #[error(
        "{0:?} is not a valid extended resource name: it must be a DNS subdomain, '/', and at most 63 letters, digits, '-', '_' or '.' starting and ending with a letter or digit (such as example.com/dongle)"
    )]
    Name(String),
    /// In a domain Kubernetes (or shoal) keeps for its own resources.
    #[error(
        "{0:?} is not an extended resource: the kubernetes.io and shoal.io domains are reserved"
    )]
    Reserved(String),
    /// Not a quantity at all.
    #[error(transparent)]
    Quantity(#[from] QuantityError),
    /// Extended resources are counted in whole units.
    #[error("{0:?} must be a whole number: extended resources are counted in whole units")]
    NotWhole(String),
}

/// Checks an extended resource name: `<domain>/<name>` outside the
/// `kubernetes.io` and `shoal.io` domains, as Kubernetes'
/// `IsExtendedResourceName` (shoal.io keeps `shoal.io/volume-storage`).
pub fn check_name(name: &str) -> Result<(), ExtendedError> {
    let Some((prefix, rest)) = name.split_once('/') else {
        return Err(ExtendedError::Name(name.into()));
    };
    let reserved = |d: &str| prefix == d || prefix.ends_with(&format!(".{d}"));
    if reserved("kubernetes.io") || reserved("shoal.io") {
        return Err(ExtendedError::Reserved(name.into()));
    }
    let b = rest.as_bytes();
    let name_ok = !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric();
    if !is_dns_subdomain(prefix) || !name_ok {
        return Err(ExtendedError::Name(name.into()));
    }
    Ok(())
}

/// Whether a container resource name is an extended resource.
pub fn is_extended(name: &str) -> bool {
    name.contains('/') && check_name(name).is_ok()
}

/// Parses an extended resource count: any quantity whose value is whole
/// (`2`, `1k`, `2000m`), as Kubernetes accepts.
pub fn parse_count(q: &str) -> Result<u64, ExtendedError> {
    let nanos = parse_nanos(q)?;
    if !nanos.is_multiple_of(1_000_000_000) {
        return Err(ExtendedError::NotWhole(q.into()));
    }
    Ok(nanos / 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_extended("example.com/dongle"));
        assert!(is_extended("nvidia.com/gpu"));
        assert!(!is_extended("cpu"));
        assert!(!is_extended(EPHEMERAL_STORAGE));
        assert!(matches!(
            check_name("kubernetes.io/foo"),
            Err(ExtendedError::Reserved(_))
        ));
        assert!(matches!(
            check_name("x.kubernetes.io/foo"),
            Err(ExtendedError::Reserved(_))
        ));
        assert!(matches!(
            check_name("shoal.io/volume-storage"),
            Err(ExtendedError::Reserved(_))
        ));
        for bad in [
            "dongle",
            "Example_com/d",
            "example.com/",
            "example.com/-x",
            "/x",
        ] {
            assert!(
                matches!(check_name(bad), Err(ExtendedError::Name(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn counts() {
        assert_eq!(parse_count("2"), Ok(2));
        assert_eq!(parse_count("1k"), Ok(1000));
        assert_eq!(parse_count("2000m"), Ok(2));
        assert!(matches!(
            parse_count("500m"),
            Err(ExtendedError::NotWhole(_))
        ));
        assert!(matches!(
            parse_count("1.5"),
            Err(ExtendedError::NotWhole(_))
        ));
        assert!(matches!(parse_count("x"), Err(ExtendedError::Quantity(_))));
        assert!(matches!(parse_count("-1"), Err(ExtendedError::Quantity(_))));
    }
}
