//! Timestamps as the API writes them: RFC 3339 in UTC, whole seconds
//! (`2026-11-30T03:00:00Z`, Kubernetes' `metav1.Time`), on the `time` crate.
//! Parsing accepts what other writers produce too: fractions and offsets
//! (Docker's `2026-11-27T02:10:25.86405365Z`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Seconds since the epoch now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Now, as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    rfc3339(secs)
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// Parses RFC 3339, whose date and time are separated by `T` (or, as its
/// note allows, a space): the `time` crate takes any character there.
fn parse(ts: &str) -> Option<OffsetDateTime> {
    if !matches!(ts.as_bytes().get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    OffsetDateTime::parse(ts, &Rfc3339).ok()
}

/// Seconds since the epoch of an RFC 3339 timestamp (fractions dropped);
/// `None` for garbage or a time before the epoch.
pub fn parse_rfc3339(ts: &str) -> Option<u64> {
    let t = parse(ts)?;
    u64::try_from(t.unix_timestamp()).ok()
}

/// An RFC 3339 timestamp as a `SystemTime`, fractions kept; `None` for
/// garbage or a time before the epoch (Docker's "never" is year 1).
pub fn parse_rfc3339_time(ts: &str) -> Option<SystemTime> {
    let t = parse(ts)?;
    let nanos = u64::try_from(t.unix_timestamp_nanos()).ok()?;
    Some(UNIX_EPOCH + Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_764_471_600), "2025-11-30T03:00:00Z");
    }

    #[test]
    fn parses_what_it_formats_and_what_others_write() {
        for secs in [0, 951_782_400, 1_764_471_600, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&rfc3339(secs)), Some(secs));
        }
        assert_eq!(
            parse_rfc3339("2000-03-01T01:00:00+01:00"),
            Some(951_868_800)
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T23:59:59.75Z"),
            Some(1_709_251_199)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), None);
        let t = parse_rfc3339_time("2026-11-27T02:10:25.86405365Z").expect("parses");
        let d = t.duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(d.as_secs(), 1_795_745_425);
        assert_eq!(d.subsec_nanos(), 864_053_650);
        assert_eq!(parse_rfc3339_time("0001-01-01T00:00:00Z"), None);
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_798_761_599), "2026-12-31T23:59:59Z");
    }

    #[test]
    fn rfc3339_parses_known_instants() {
        assert_eq!(parse_rfc3339("1970-01-01T00:01:00Z"), Some(60));
        assert_eq!(parse_rfc3339("2026-11-27T00:00:00Z"), Some(1_795_737_600));
        assert_eq!(parse_rfc3339("garbage"), None);
    }
}
