//! The last two samples of each container (and of the host), from which a
//! rate is taken: metrics-server's window, bounded to two points per
//! container and to a fixed number of containers.

use std::collections::HashMap;

/// One reading of a cumulative CPU counter and a memory figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Point {
    /// When it was read, in milliseconds since the epoch.
    pub at_ms: u64,
    /// Cumulative CPU time, in nanoseconds.
    pub cpu_nanos: u64,
    /// Memory, in bytes.
    pub memory: u64,
}

/// Two consecutive points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Window {
    prev: Option<Point>,
    last: Point,
}

impl Window {
    /// A window holding one point: no rate yet.
    pub fn new(p: Point) -> Window {
        Window {
            prev: None,
            last: p,
        }
    }

    /// Adds a point. A counter that went back (the container was replaced
    /// under the same key) or a clock that did not move starts over rather
    /// than report a nonsense rate.
    pub fn push(&mut self, p: Point) {
        if p.cpu_nanos < self.last.cpu_nanos || p.at_ms <= self.last.at_ms {
            *self = Window::new(p);
        } else {
            self.prev = Some(self.last);
            self.last = p;
        }
    }

    /// The newest point.
    pub fn last(&self) -> Point {
        self.last
    }

    /// CPU rate in nanocores and the window's length in milliseconds, once
    /// there are two points.
    pub fn rate(&self) -> Option<(u64, u64)> {
        let prev = self.prev?;
        let dt = self.last.at_ms - prev.at_ms;
        let dcpu = u128::from(self.last.cpu_nanos - prev.cpu_nanos);
        let nanocores = dcpu * 1000 / u128::from(dt.max(1));
        Some((u64::try_from(nanocores).unwrap_or(u64::MAX), dt))
    }
}

/// Windows by key, keeping only the keys seen in the latest round.
#[derive(Debug)]
pub(super) struct Windows<K, M> {
    max: usize,
    entries: HashMap<K, (M, Window)>,
}

impl<K: std::hash::Hash + Eq + Clone, M> Windows<K, M> {
    /// At most `max` keys.
    pub fn new(max: usize) -> Windows<K, M> {
        Windows {
            max,
            entries: HashMap::new(),
        }
    }

    /// Replaces the round: keys not in `seen` are forgotten (their pod is
    /// gone), new ones start a window while there is room. Returns how many
    /// were refused for want of room.
    pub fn round(&mut self, seen: Vec<(K, M, Point)>) -> usize {
        let keys: std::collections::HashSet<K> = seen.iter().map(|(k, _, _)| k.clone()).collect();
        self.entries.retain(|k, _| keys.contains(k));
        let mut dropped = 0;
        for (k, meta, p) in seen {
            let room = self.entries.len() < self.max;
            match self.entries.get_mut(&k) {
                Some((m, w)) => {
                    *m = meta;
                    w.push(p);
                }
                None if room => {
                    self.entries.insert(k, (meta, Window::new(p)));
                }
                None => dropped += 1,
            }
        }
        dropped
    }

    /// Every key with its metadata and window.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &M, &Window)> {
        self.entries.iter().map(|(k, (m, w))| (k, m, w))
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(at_ms: u64, cpu_nanos: u64) -> Point {
        Point {
            at_ms,
            cpu_nanos,
            memory: 7,
        }
    }

    #[test]
    fn rate_is_delta_cpu_over_delta_wall_time() {
        let mut w = Window::new(p(1_000, 0));
        assert_eq!(w.rate(), None, "one point has no rate");
        // Half a second of CPU over five seconds: 100m.
        w.push(p(6_000, 500_000_000));
        assert_eq!(w.rate(), Some((100_000_000, 5_000)));
        // A core burnt for two seconds.
        w.push(p(8_000, 2_500_000_000));
        assert_eq!(w.rate(), Some((1_000_000_000, 2_000)));
    }

    #[test]
    fn a_counter_that_goes_back_or_a_still_clock_starts_over() {
        let mut w = Window::new(p(1_000, 900));
        w.push(p(2_000, 100));
        assert_eq!(w.rate(), None);
        w.push(p(2_000, 200));
        assert_eq!(w.rate(), None);
        assert_eq!(w.last(), p(2_000, 200));
    }

    #[test]
    fn rounds_forget_gone_keys_and_are_bounded() {
        let mut ws: Windows<&str, ()> = Windows::new(2);
        assert_eq!(
            ws.round(vec![
                ("a", (), p(1, 1)),
                ("b", (), p(1, 1)),
                ("c", (), p(1, 1))
            ]),
            1
        );
        assert_eq!(ws.len(), 2);
        let dropped = ws.round(vec![("a", (), p(2, 2)), ("c", (), p(2, 2))]);
        // b is gone, so c has room now; a continues its window.
        assert_eq!(dropped, 0);
        assert_eq!(ws.len(), 2);
        let a = ws.iter().find(|(k, _, _)| **k == "a").expect("a");
        assert!(a.2.rate().is_some());
        let c = ws.iter().find(|(k, _, _)| **k == "c").expect("c");
        assert!(c.2.rate().is_none());
    }
}
