//! CronJob schedules: five cron fields or an `@hourly`-style macro, in a
//! time zone. Parsing and matching are the `croner` crate's (with seconds
//! and years refused, as Kubernetes' parser); time zones are `chrono-tz`'s
//! compiled-in IANA database, so no node depends on its own tzdata.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// Why a schedule or time zone is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The schedule does not parse.
    #[error("{0}")]
    Schedule(String),
    /// The time zone is not in the IANA database.
    #[error("{0}")]
    TimeZone(String),
}

/// A parsed schedule in its time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    tz: Tz,
}

/// The macros Kubernetes accepts, as five fields.
fn expand(s: &str) -> Option<&'static str> {
    Some(match s {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => return None,
    })
}

impl Schedule {
    /// Parses `schedule` in `time_zone` (UTC when `None`).
    pub fn parse(schedule: &str, time_zone: Option<&str>) -> Result<Schedule, ScheduleError> {
        let s = schedule.trim();
        let tz = match time_zone {
            None => Tz::UTC,
            Some(name) => Tz::from_str(name).map_err(|_| {
                ScheduleError::TimeZone(format!(
                    "{name:?} is not a time zone of the IANA database (like \"Etc/UTC\" or \"Europe/Paris\")"
                ))
            })?,
        };
        if s.starts_with("TZ=") || s.starts_with("CRON_TZ=") {
            return Err(ScheduleError::Schedule(
                "a time zone in the schedule is not supported: set spec.timeZone".into(),
            ));
        }
        let fields = match expand(s) {
            Some(f) => f.to_string(),
            None if s.starts_with('@') => {
                return Err(ScheduleError::Schedule(format!(
                    "{s:?} is not a known macro: use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly"
                )));
            }
            None => {
                let n = s.split_whitespace().count();
                if n != 5 {
                    return Err(ScheduleError::Schedule(format!(
                        "{s:?} has {n} fields: a schedule has five (minute hour day-of-month month day-of-week), as \"*/5 * * * *\""
                    )));
                }
                s.to_string()
            }
        };
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(&fields)
            .map_err(|e| ScheduleError::Schedule(format!("{s:?} does not parse: {e}")))?;
        Ok(Schedule { cron, tz })
    }

    /// The first scheduled time strictly after `secs` (seconds since the
    /// epoch), if there is one.
    pub fn next_after(&self, secs: u64) -> Option<u64> {
        let t: DateTime<Utc> = Utc.timestamp_opt(i64::try_from(secs).ok()?, 0).single()?;
        let local = t.with_timezone(&self.tz);
        let next = self.cron.find_next_occurrence(&local, false).ok()?;
        u64::try_from(next.timestamp()).ok()
    }

    /// The latest scheduled time at or before `secs`, if there is one.
    pub fn last_at_or_before(&self, secs: u64) -> Option<u64> {
        let t: DateTime<Utc> = Utc.timestamp_opt(i64::try_from(secs).ok()?, 0).single()?;
        let local = t.with_timezone(&self.tz);
        let prev = self.cron.find_previous_occurrence(&local, true).ok()?;
        u64::try_from(prev.timestamp()).ok()
    }

    /// The scheduled times in `(after, until]`, oldest first, at most `limit`
    /// of them; the flag says whether more were left out.
    pub fn times_between(&self, after: u64, until: u64, limit: usize) -> (Vec<u64>, bool) {
        let mut out = Vec::new();
        let mut t = after;
        while let Some(n) = self.next_after(t) {
            if n > until {
                return (out, false);
            }
            if out.len() == limit {
                return (out, true);
            }
            out.push(n);
            t = n;
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_798_761_600; // 2027-01-01T00:00:00Z, a Friday

    #[test]
    fn five_fields_and_macros() {
        let every = Schedule::parse("* * * * *", None).unwrap();
        assert_eq!(every.next_after(T), Some(T + 60));
        assert_eq!(every.next_after(T + 59), Some(T + 60));
        let hourly = Schedule::parse("@hourly", None).unwrap();
        assert_eq!(hourly.next_after(T), Some(T + 3600));
        let five = Schedule::parse("*/5 * * * *", None).unwrap();
        assert_eq!(five.next_after(T + 1), Some(T + 300));
        let weekly = Schedule::parse("@weekly", None).unwrap();
        assert_eq!(weekly.next_after(T), Some(T + 2 * 86_400), "Sunday 00:00");
        assert_eq!(
            Schedule::parse("0 9 * * MON-FRI", None)
                .unwrap()
                .next_after(T),
            Some(T + 9 * 3600)
        );
    }

    #[test]
    fn time_zones_shift_the_times() {
        let paris = Schedule::parse("0 9 * * *", Some("Europe/Paris")).unwrap();
        // 09:00 in Paris in January is 08:00 UTC.
        assert_eq!(paris.next_after(T), Some(T + 8 * 3600));
        let ny = Schedule::parse("0 0 * * *", Some("America/New_York")).unwrap();
        assert_eq!(ny.next_after(T), Some(T + 5 * 3600));
    }

    #[test]
    fn bad_schedules_say_why() {
        let e = |s: &str| Schedule::parse(s, None).unwrap_err().to_string();
        assert!(e("* * * *").contains("has 4 fields"), "{}", e("* * * *"));
        assert!(e("0 * * * * *").contains("has 6 fields"));
        assert!(
            e("61 * * * *").contains("does not parse"),
            "{}",
            e("61 * * * *")
        );
        assert!(e("@every 5m").contains("not a known macro"));
        assert!(e("TZ=UTC * * * * *").contains("spec.timeZone"));
        let tz = Schedule::parse("* * * * *", Some("Mars/Olympus")).unwrap_err();
        assert!(matches!(tz, ScheduleError::TimeZone(_)), "{tz}");
    }

    #[test]
    fn times_between_are_bounded() {
        let every = Schedule::parse("* * * * *", None).unwrap();
        assert_eq!(
            every.times_between(T, T + 180, 10),
            (vec![T + 60, T + 120, T + 180], false)
        );
        assert_eq!(
            every.times_between(T, T + 600, 2),
            (vec![T + 60, T + 120], true)
        );
        assert_eq!(every.times_between(T, T + 59, 10), (vec![], false));
        assert_eq!(every.last_at_or_before(T + 119), Some(T + 60));
        assert_eq!(every.last_at_or_before(T + 120), Some(T + 120));
    }
}
