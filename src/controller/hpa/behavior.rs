//! Kubernetes' `behavior`, pure: stabilization windows over the recent
//! recommendations, then the scaling policies' rate limits, then the
//! min/max clamp (horizontal.go's normalizeDesiredReplicasWithBehaviors).
//! Times are milliseconds since the epoch, passed in.

use crate::resource::types::{HorizontalPodAutoscalerBehavior, HpaScalingPolicy, HpaScalingRules};

/// Which policy wins when several apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// The largest change (the default).
    Max,
    /// The smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// A limit on change per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// At most this many pods per period.
    Pods { value: u32, period_s: u32 },
    /// At most this percent of the period's starting count per period.
    Percent { value: u32, period_s: u32 },
}

impl Policy {
    fn period_ms(&self) -> u64 {
        match *self {
            Policy::Pods { period_s, .. } | Policy::Percent { period_s, .. } => {
                u64::from(period_s) * 1000
            }
        }
    }
}

/// One direction's rules, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Stabilization window, seconds.
    pub window_s: u32,
    /// How policies combine.
    pub select: Select,
    /// The policies.
    pub policies: Vec<Policy>,
}

/// Both directions' rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behavior {
    /// Scaling up.
    pub up: Rules,
    /// Scaling down.
    pub down: Rules,
}

impl Default for Behavior {
    /// Kubernetes' defaults: up at once by max(100%, 4 pods) per 15 s; down
    /// after a 300 s window by up to 100% per 15 s.
    fn default() -> Self {
        Behavior {
            up: Rules {
                window_s: 0,
                select: Select::Max,
                policies: vec![
                    Policy::Percent {
                        value: 100,
                        period_s: 15,
                    },
                    Policy::Pods {
                        value: 4,
                        period_s: 15,
                    },
                ],
            },
            down: Rules {
                window_s: 300,
                select: Select::Max,
                policies: vec![Policy::Percent {
                    value: 100,
                    period_s: 15,
                }],
            },
        }
    }
}

fn policy_of(p: &HpaScalingPolicy) -> Option<Policy> {
    let (value, period_s) = (p.value, p.period_seconds);
    match p.type_.as_str() {
        "Pods" => Some(Policy::Pods { value, period_s }),
        "Percent" => Some(Policy::Percent { value, period_s }),
        _ => None,
    }
}

fn rules_of(r: Option<&HpaScalingRules>, default: Rules) -> Rules {
    let Some(r) = r else { return default };
    Rules {
        window_s: r.stabilization_window_seconds.unwrap_or(default.window_s),
        select: match r.select_policy.as_deref() {
            Some("Min") => Select::Min,
            Some("Disabled") => Select::Disabled,
            _ => Select::Max,
        },
        policies: match &r.policies {
            Some(ps) => ps.iter().filter_map(policy_of).collect(),
            None => default.policies,
        },
    }
}

impl Behavior {
    /// The spec's behavior with Kubernetes' defaults for what it leaves out
    /// (validation has already refused unknown policy types).
    pub fn from_spec(b: Option<&HorizontalPodAutoscalerBehavior>) -> Behavior {
        let d = Behavior::default();
        Behavior {
            up: rules_of(b.and_then(|b| b.scale_up.as_ref()), d.up),
            down: rules_of(b.and_then(|b| b.scale_down.as_ref()), d.down),
        }
    }

    /// How long scale events must be kept: the longest period.
    pub fn longest_period_ms(&self) -> u64 {
        self.up
            .policies
            .iter()
            .chain(&self.down.policies)
            .map(Policy::period_ms)
            .max()
            .unwrap_or(0)
    }
}

/// A recommendation the metrics made, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recommendation {
    /// Replicas recommended.
    pub replicas: u32,
    /// When, ms.
    pub at_ms: u64,
}

/// A rescale done, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleEvent {
    /// Pods added or removed.
    pub change: u32,
    /// When, ms.
    pub at_ms: u64,
}

/// What one HPA remembers between passes (the leader's memory only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Recent recommendations, for the stabilization windows.
    pub recommendations: Vec<Recommendation>,
    /// Recent scale-ups, for the policies' periods.
    pub ups: Vec<ScaleEvent>,
    /// Recent scale-downs.
    pub downs: Vec<ScaleEvent>,
}

impl History {
    /// Notes a rescale from `from` to `to` at `now`, and forgets events
    /// older than any policy looks at.
    pub fn record_scale(&mut self, from: u32, to: u32, now: u64, keep_ms: u64) {
        let cutoff = now.saturating_sub(keep_ms);
        self.ups.retain(|e| e.at_ms > cutoff);
        self.downs.retain(|e| e.at_ms > cutoff);
        if to > from {
            self.ups.push(ScaleEvent {
                change: to - from,
                at_ms: now,
            });
        } else if to < from {
            self.downs.push(ScaleEvent {
                change: from - to,
                at_ms: now,
            });
        }
    }
}

/// A condition's reason and message.
pub type Why = (&'static str, &'static str);

/// Applies the stabilization windows to `desired` and records it (entries
/// past both windows are dropped, so the history holds only the passes
/// within the longest window). Returns the stabilized count and
/// the `AbleToScale` reason.
pub fn stabilize(
    h: &mut History,
    b: &Behavior,
    current: u32,
    desired: u32,
    now: u64,
) -> (u32, Why) {
    let up_cutoff = now.saturating_sub(u64::from(b.up.window_s) * 1000);
    let down_cutoff = now.saturating_sub(u64::from(b.down.window_s) * 1000);
    let (mut up, mut down) = (desired, desired);
    for r in &h.recommendations {
        if r.at_ms > up_cutoff {
            up = up.min(r.replicas);
        }
        if r.at_ms > down_cutoff {
            down = down.max(r.replicas);
        }
    }
    let stabilized = current.max(up).min(down);
    // What is past both windows is never read again.
    h.recommendations
        .retain(|r| r.at_ms > up_cutoff || r.at_ms > down_cutoff);
    h.recommendations.push(Recommendation {
        replicas: desired,
        at_ms: now,
    });
    let why = if stabilized == desired {
        ("ReadyForNewScale", "recommended size matches current size")
    } else if desired >= current {
        (
            "ScaleUpStabilized",
            "recent recommendations were lower than current one, applying the lowest recent recommendation",
        )
    } else {
        (
            "ScaleDownStabilized",
            "recent recommendations were higher than current one, applying the highest recent recommendation",
        )
    };
    (stabilized, why)
}

fn changed_within(events: &[ScaleEvent], period_ms: u64, now: u64) -> i64 {
    let cutoff = now.saturating_sub(period_ms);
    events
        .iter()
        .filter(|e| e.at_ms > cutoff)
        .map(|e| i64::from(e.change))
        .sum()
}

fn limit(h: &History, current: u32, rules: &Rules, now: u64, up: bool) -> i64 {
    let current = i64::from(current);
    if rules.select == Select::Disabled {
        return current;
    }
    // Up: Max picks the highest ceiling; down: Max picks the lowest floor.
    let pick_max = (rules.select == Select::Max) == up;
    let mut result: Option<i64> = None;
    for p in &rules.policies {
        let added = changed_within(&h.ups, p.period_ms(), now);
        let removed = changed_within(&h.downs, p.period_ms(), now);
        let start = current - added + removed;
        let proposed = match (*p, up) {
            (Policy::Pods { value, .. }, true) => start + i64::from(value),
            (Policy::Pods { value, .. }, false) => start - i64::from(value),
            (Policy::Percent { value, .. }, true) => {
                (start as f64 * (1.0 + f64::from(value) / 100.0)).ceil() as i64
            }
            (Policy::Percent { value, .. }, false) => {
                (start as f64 * (1.0 - f64::from(value) / 100.0)) as i64
            }
        };
        result = Some(match result {
            None => proposed,
            Some(r) if pick_max => r.max(proposed),
            Some(r) => r.min(proposed),
        });
    }
    // No policy at all: nothing limits this direction.
    result.unwrap_or(if up { i64::MAX } else { i64::MIN })
}

/// Applies the policies' rate limits and min/max to a stabilized count.
/// Returns the count and the `ScalingLimited` reason; `limited` is whether
/// the count was changed.
pub fn rate_limit(
    h: &History,
    b: &Behavior,
    current: u32,
    desired: u32,
    min: u32,
    max: u32,
    now: u64,
) -> (u32, Why, bool) {
    if desired > current {
        let up = limit(h, current, &b.up, now, true).max(i64::from(current));
        let (allowed, why) = if i64::from(max) > up {
            (
                up,
                (
                    "ScaleUpLimit",
                    "the desired replica count is increasing faster than the maximum scale rate",
                ),
            )
        } else {
            (
                i64::from(max),
                (
                    "TooManyReplicas",
                    "the desired replica count is more than the maximum replica count",
                ),
            )
        };
        if i64::from(desired) > allowed {
            return (u32::try_from(allowed).unwrap_or(max), why, true);
        }
    } else if desired < current {
        let down = limit(h, current, &b.down, now, false).min(i64::from(current));
        let (allowed, why) = if i64::from(min) < down {
            (
                down,
                (
                    "ScaleDownLimit",
                    "the desired replica count is decreasing faster than the maximum scale rate",
                ),
            )
        } else {
            (
                i64::from(min),
                (
                    "TooFewReplicas",
                    "the desired replica count is less than the minimum replica count",
                ),
            )
        };
        if i64::from(desired) < allowed {
            return (u32::try_from(allowed).unwrap_or(min), why, true);
        }
    }
    (
        desired,
        (
            "DesiredWithinRange",
            "the desired count is within the acceptable range",
        ),
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1000;

    fn rules(window_s: u32, select: Select, policies: Vec<Policy>) -> Rules {
        Rules {
            window_s,
            select,
            policies,
        }
    }

    #[test]
    fn defaults_are_kubernetes() {
        let b = Behavior::from_spec(None);
        assert_eq!(b, Behavior::default());
        assert_eq!(b.up.window_s, 0);
        assert_eq!(b.down.window_s, 300);
        assert_eq!(b.longest_period_ms(), 15 * S);
        // A spec that sets only the window keeps the default policies.
        let spec = HorizontalPodAutoscalerBehavior {
            scale_down: Some(HpaScalingRules {
                stabilization_window_seconds: Some(10),
                ..Default::default()
            }),
            ..Default::default()
        };
        let b = Behavior::from_spec(Some(&spec));
        assert_eq!(b.down.window_s, 10);
        assert_eq!(b.down.policies, Behavior::default().down.policies);
    }

    #[test]
    fn scale_up_is_immediate_and_scale_down_waits_for_the_window() {
        let b = Behavior::default();
        let mut h = History::default();
        // Up: no window.
        assert_eq!(stabilize(&mut h, &b, 2, 5, 1000 * S).0, 5);
        // Down within 300 s of a recommendation of 5: held at 5.
        let (n, why) = stabilize(&mut h, &b, 5, 1, 1100 * S);
        assert_eq!((n, why.0), (5, "ScaleDownStabilized"));
        // Past 300 s of the 5 (the 1 is still in the window): down to 1.
        let (n, why) = stabilize(&mut h, &b, 5, 1, 1301 * S);
        assert_eq!((n, why.0), (1, "ReadyForNewScale"));
    }

    #[test]
    fn scale_up_window_takes_the_lowest_recent() {
        let b = Behavior {
            up: rules(60, Select::Max, vec![]),
            down: rules(0, Select::Max, vec![]),
        };
        let mut h = History::default();
        assert_eq!(stabilize(&mut h, &b, 2, 2, 1000 * S).0, 2);
        let (n, why) = stabilize(&mut h, &b, 2, 8, 1030 * S);
        assert_eq!((n, why.0), (2, "ScaleUpStabilized"));
        assert_eq!(stabilize(&mut h, &b, 2, 8, 1061 * S).0, 8);
    }

    #[test]
    fn history_stays_bounded_by_the_windows() {
        let b = Behavior::default();
        let mut h = History::default();
        for i in 0..10_000u64 {
            stabilize(&mut h, &b, 3, 3, (1000 + i * 15) * S);
        }
        // 300 s of 15 s passes.
        assert!(h.recommendations.len() <= 21, "{}", h.recommendations.len());
    }

    #[test]
    fn default_up_rate_is_max_of_double_and_four_pods() {
        let b = Behavior::default();
        let h = History::default();
        let (n, why, limited) = rate_limit(&h, &b, 1, 100, 1, 100, 0);
        assert_eq!((n, why.0, limited), (5, "ScaleUpLimit", true));
        let (n, _, _) = rate_limit(&h, &b, 10, 100, 1, 100, 0);
        assert_eq!(n, 20);
        let (n, why, limited) = rate_limit(&h, &b, 10, 100, 1, 15, 0);
        assert_eq!((n, why.0, limited), (15, "TooManyReplicas", true));
        let (n, why, limited) = rate_limit(&h, &b, 10, 12, 1, 15, 0);
        assert_eq!((n, why.0, limited), (12, "DesiredWithinRange", false));
    }

    #[test]
    fn events_in_the_period_use_up_the_budget() {
        let b = Behavior {
            up: rules(
                0,
                Select::Max,
                vec![Policy::Pods {
                    value: 2,
                    period_s: 60,
                }],
            ),
            down: Behavior::default().down,
        };
        let mut h = History::default();
        h.record_scale(2, 4, 1000 * S, b.longest_period_ms());
        // 30 s later the period started at 2: at most 4, already there.
        let (n, why, _) = rate_limit(&h, &b, 4, 10, 1, 10, 1030 * S);
        assert_eq!((n, why.0), (4, "ScaleUpLimit"));
        // After the period, two more.
        assert_eq!(rate_limit(&h, &b, 4, 10, 1, 10, 1061 * S).0, 6);
    }

    #[test]
    fn select_min_max_and_disabled() {
        let pols = vec![
            Policy::Pods {
                value: 1,
                period_s: 15,
            },
            Policy::Percent {
                value: 50,
                period_s: 15,
            },
        ];
        let h = History::default();
        let mk = |sel| Behavior {
            up: rules(0, sel, pols.clone()),
            down: rules(0, sel, pols.clone()),
        };
        // Up from 10: Pods gives 11, Percent 15.
        assert_eq!(rate_limit(&h, &mk(Select::Max), 10, 50, 1, 50, 0).0, 15);
        assert_eq!(rate_limit(&h, &mk(Select::Min), 10, 50, 1, 50, 0).0, 11);
        assert_eq!(
            rate_limit(&h, &mk(Select::Disabled), 10, 50, 1, 50, 0).0,
            10
        );
        // Down from 10: Pods gives 9, Percent 5.
        assert_eq!(rate_limit(&h, &mk(Select::Max), 10, 1, 1, 50, 0).0, 5);
        assert_eq!(rate_limit(&h, &mk(Select::Min), 10, 1, 1, 50, 0).0, 9);
        let (n, why, _) = rate_limit(&h, &mk(Select::Disabled), 10, 1, 1, 50, 0);
        assert_eq!((n, why.0), (10, "ScaleDownLimit"));
    }

    #[test]
    fn scale_down_clamps_at_min() {
        let b = Behavior::default();
        let h = History::default();
        // 100% per 15 s allows 0; min is 2.
        let (n, why, limited) = rate_limit(&h, &b, 6, 0, 2, 10, 0);
        assert_eq!((n, why.0, limited), (2, "TooFewReplicas", true));
    }
}
