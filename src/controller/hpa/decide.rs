//! One HPA's decision, pure: from its spec, the target's replica count, its
//! pods' requests and usage, and the controller's memory of recent
//! recommendations and rescales, to the replica count to write and the
//! status to report (horizontal.go's reconcileAutoscaler).

use super::behavior::{self, Behavior, History};
use super::replicas::{self, MetricError, PodInput, Target};
use crate::resource::types::{
    HorizontalPodAutoscalerSpec, MetricStatus, MetricValueStatus, ResourceMetricStatus,
};

/// Kubernetes' CPU target when an HPA names no metric.
pub const DEFAULT_CPU_UTILIZATION: u32 = 80;

/// One pod of the target with what both resources need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFacts {
    /// Pod name.
    pub name: String,
    /// Being deleted, or Failed or Succeeded.
    pub ignored: bool,
    /// Its Ready condition is not True.
    pub unready: bool,
    /// Sum of container CPU requests in millicores, or the container without one.
    pub cpu_request: Result<u64, String>,
    /// Sum of container memory requests in bytes, or the container without one.
    pub memory_request: Result<u64, String>,
    /// CPU use in millicores, when reported.
    pub cpu_usage: Option<u64>,
    /// Working set in bytes, when reported.
    pub memory_usage: Option<u64>,
}

/// A condition to set: type, status, reason, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    /// `AbleToScale`, `ScalingActive` or `ScalingLimited`.
    pub type_: &'static str,
    /// True or false.
    pub status: bool,
    /// Reason.
    pub reason: &'static str,
    /// Message.
    pub message: String,
}

/// What the pass should do and report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The replica count for the target.
    pub desired: u32,
    /// Why it changes (for the SuccessfulRescale event), when it does.
    pub rescale: Option<String>,
    /// The metrics as measured, for status.
    pub current_metrics: Vec<MetricStatus>,
    /// Conditions to set (others keep what they had).
    pub conditions: Vec<Cond>,
}

/// A metric of the spec, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metric {
    /// `cpu` or `memory`.
    pub resource: String,
    /// Its target, in millicores or bytes.
    pub target: Target,
}

impl Metric {
    fn describe(&self) -> String {
        match self.target {
            Target::Utilization(_) => {
                format!(
                    "{} resource utilization (percentage of request)",
                    self.resource
                )
            }
            Target::AverageValue(_) => format!("{} resource", self.resource),
        }
    }
}

/// The spec's metrics (validated already); CPU at 80% when none.
pub fn metrics_of(spec: &HorizontalPodAutoscalerSpec) -> Vec<Metric> {
    if spec.metrics.is_empty() {
        return vec![Metric {
            resource: "cpu".into(),
            target: Target::Utilization(DEFAULT_CPU_UTILIZATION),
        }];
    }
    spec.metrics
        .iter()
        .filter_map(|m| {
            let r = m.resource.as_ref()?;
            let target = match r.target.type_.as_str() {
                "Utilization" => Target::Utilization(r.target.average_utilization?),
                "AverageValue" => {
                    let q = r.target.average_value.as_ref()?;
                    let v = match r.name.as_str() {
                        "cpu" => q.cpu_millis().ok()?,
                        _ => q.memory_bytes().ok()?,
                    };
                    Target::AverageValue(v)
                }
                _ => return None,
            };
            Some(Metric {
                resource: r.name.clone(),
                target,
            })
        })
        .collect()
}

fn inputs(pods: &[PodFacts], resource: &str) -> Vec<PodInput> {
    pods.iter()
        .map(|p| PodInput {
            name: p.name.clone(),
            ignored: p.ignored,
            unready: p.unready,
            request: match resource {
                "cpu" => p.cpu_request.clone(),
                _ => p.memory_request.clone(),
            },
            usage: match resource {
                "cpu" => p.cpu_usage,
                _ => p.memory_usage,
            },
        })
        .collect()
}

fn status_of(m: &Metric, p: &replicas::Proposal) -> MetricStatus {
    let average_value = match m.resource.as_str() {
        "cpu" => format!("{}m", p.average),
        _ => p.average.to_string(),
    };
    MetricStatus {
        type_: "Resource".into(),
        resource: Some(ResourceMetricStatus {
            name: m.resource.clone(),
            current: MetricValueStatus {
                average_utilization: p.utilization,
                average_value: Some(average_value),
            },
        }),
    }
}

fn cond(
    type_: &'static str,
    status: bool,
    reason: &'static str,
    message: impl Into<String>,
) -> Cond {
    Cond {
        type_,
        status,
        reason,
        message: message.into(),
    }
}

/// Decides one pass for an HPA whose target has `current` replicas.
pub fn decide(
    spec: &HorizontalPodAutoscalerSpec,
    current: u32,
    pods: &[PodFacts],
    history: &mut History,
    now_ms: u64,
) -> Decision {
    let min = spec.min_replicas.unwrap_or(1);
    let max = spec.max_replicas;
    let mut conditions = vec![cond(
        "AbleToScale",
        true,
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale",
    )];
    let mut current_metrics = Vec::new();
    let (desired, reason) = if current == 0 && min != 0 {
        conditions.push(cond(
            "ScalingActive",
            false,
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero",
        ));
        (0, String::new())
    } else if current > max {
        (
            max,
            "Current number of replicas above Spec.MaxReplicas".into(),
        )
    } else if current < min {
        (
            min,
            "Current number of replicas below Spec.MinReplicas".into(),
        )
    } else {
        let metrics = metrics_of(spec);
        let mut best: Option<(u32, String)> = None;
        let mut errors: Vec<MetricError> = Vec::new();
        for m in &metrics {
            let input = inputs(pods, &m.resource);
            match replicas::replicas_for_metric(
                &m.resource,
                current,
                m.target,
                &input,
                replicas::TOLERANCE,
            ) {
                Ok(p) => {
                    current_metrics.push(status_of(m, &p));
                    if best.as_ref().is_none_or(|(r, _)| p.replicas > *r) {
                        best = Some((p.replicas, m.describe()));
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        // Kubernetes: with a metric missing, only a scale-up is trusted
        // (the missing one might have wanted more).
        let usable = match &best {
            Some((r, _)) => errors.is_empty() || *r > current,
            None => false,
        };
        match (best, usable) {
            (Some((proposed, metric)), true) => {
                conditions.push(cond(
                    "ScalingActive",
                    true,
                    "ValidMetricFound",
                    format!(
                        "the HPA was able to successfully calculate a replica count from {metric}"
                    ),
                ));
                let b = Behavior::from_spec(spec.behavior.as_ref());
                let (stabilized, why) = behavior::stabilize(history, &b, current, proposed, now_ms);
                conditions[0] = cond("AbleToScale", true, why.0, why.1);
                let (desired, why, limited) =
                    behavior::rate_limit(history, &b, current, stabilized, min, max, now_ms);
                conditions.push(cond("ScalingLimited", limited, why.0, why.1));
                let reason = if desired > current {
                    format!("{metric} above target")
                } else {
                    "All metrics below target".into()
                };
                (desired, reason)
            }
            _ => {
                let msg = errors
                    .first()
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "invalid metrics".into());
                conditions.push(cond(
                    "ScalingActive",
                    false,
                    "FailedGetResourceMetric",
                    format!("the HPA was unable to compute the replica count: {msg}"),
                ));
                (current, String::new())
            }
        }
    };
    Decision {
        desired,
        rescale: (desired != current).then_some(reason),
        current_metrics,
        conditions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::types::{
        HorizontalPodAutoscalerBehavior, HpaScalingRules, MetricSpec, MetricTarget,
        ResourceMetricSource,
    };

    fn spec(min: u32, max: u32, cpu_pct: u32, down_window: u32) -> HorizontalPodAutoscalerSpec {
        HorizontalPodAutoscalerSpec {
            min_replicas: Some(min),
            max_replicas: max,
            metrics: vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(cpu_pct),
                        ..Default::default()
                    },
                }),
            }],
            behavior: Some(HorizontalPodAutoscalerBehavior {
                scale_down: Some(HpaScalingRules {
                    stabilization_window_seconds: Some(down_window),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn busy(name: &str, usage: u64) -> PodFacts {
        PodFacts {
            name: name.into(),
            ignored: false,
            unready: false,
            cpu_request: Ok(100),
            memory_request: Err("app".into()),
            cpu_usage: Some(usage),
            memory_usage: Some(1 << 20),
        }
    }

    fn find<'a>(d: &'a Decision, t: &str) -> &'a Cond {
        d.conditions.iter().find(|c| c.type_ == t).expect(t)
    }

    #[test]
    fn a_busy_pod_scales_up_and_reports_its_utilization() {
        let mut h = History::default();
        let d = decide(
            &spec(1, 10, 50, 0),
            1,
            &[busy("a", 1000)],
            &mut h,
            1_000_000,
        );
        // 1000% of request against 50%: 20 wanted, 5 allowed by the default
        // up rate (max of 100% and 4 pods per 15 s).
        assert_eq!(d.desired, 5);
        assert_eq!(
            d.rescale.as_deref(),
            Some("cpu resource utilization (percentage of request) above target")
        );
        let limited = find(&d, "ScalingLimited");
        assert!(limited.status);
        assert_eq!(limited.reason, "ScaleUpLimit");
        assert_eq!(find(&d, "ScalingActive").reason, "ValidMetricFound");
        let m = d.current_metrics[0].resource.as_ref().expect("resource");
        assert_eq!(m.current.average_utilization, Some(1000));
        assert_eq!(m.current.average_value.as_deref(), Some("1000m"));
    }

    #[test]
    fn idle_pods_scale_down_to_min_after_the_window() {
        let mut h = History::default();
        let s = spec(1, 10, 50, 30);
        let pods: Vec<_> = (0..4).map(|i| busy(&format!("p{i}"), 0)).collect();
        let t0 = 1_000_000;
        // Recommendation 4 recorded when busy.
        let busy4: Vec<_> = (0..4).map(|i| busy(&format!("p{i}"), 50)).collect();
        assert_eq!(decide(&s, 4, &busy4, &mut h, t0).desired, 4);
        let d = decide(&s, 4, &pods, &mut h, t0 + 10_000);
        assert_eq!(d.desired, 4, "held by the 30 s window");
        assert_eq!(find(&d, "AbleToScale").reason, "ScaleDownStabilized");
        assert_eq!(d.rescale, None);
        let d = decide(&s, 4, &pods, &mut h, t0 + 31_000);
        assert_eq!(d.desired, 1);
        assert_eq!(d.rescale.as_deref(), Some("All metrics below target"));
        assert_eq!(find(&d, "ScalingLimited").reason, "TooFewReplicas");
    }

    #[test]
    fn no_requests_is_failed_get_resource_metric() {
        let mut h = History::default();
        let mut p = busy("a", 10);
        p.cpu_request = Err("app".into());
        let d = decide(&spec(1, 10, 50, 0), 2, &[p], &mut h, 0);
        assert_eq!(d.desired, 2);
        assert_eq!(d.rescale, None);
        let c = find(&d, "ScalingActive");
        assert!(!c.status);
        assert_eq!(c.reason, "FailedGetResourceMetric");
        assert!(
            c.message
                .contains("missing request for cpu in container app of Pod a"),
            "{}",
            c.message
        );
    }

    #[test]
    fn out_of_range_counts_are_brought_back_without_metrics() {
        let mut h = History::default();
        let d = decide(&spec(2, 5, 50, 0), 9, &[], &mut h, 0);
        assert_eq!(d.desired, 5);
        assert_eq!(
            d.rescale.as_deref(),
            Some("Current number of replicas above Spec.MaxReplicas")
        );
        let d = decide(&spec(2, 5, 50, 0), 1, &[], &mut h, 0);
        assert_eq!(d.desired, 2);
        let d = decide(&spec(2, 5, 50, 0), 0, &[], &mut h, 0);
        assert_eq!(
            (d.desired, find(&d, "ScalingActive").reason),
            (0, "ScalingDisabled")
        );
    }

    #[test]
    fn the_highest_metric_wins_and_a_failed_one_blocks_scale_down_only() {
        let mut s = spec(1, 10, 50, 0);
        s.metrics.push(MetricSpec {
            type_: "Resource".into(),
            resource: Some(ResourceMetricSource {
                name: "memory".into(),
                target: MetricTarget {
                    type_: "AverageValue".into(),
                    average_value: Some(crate::resource::types::Quantity("512Ki".into())),
                    ..Default::default()
                },
            }),
        });
        let mut h = History::default();
        // CPU wants 1 (idle); memory at 1 MiB against 512 KiB wants 4.
        let pods: Vec<_> = (0..2).map(|i| busy(&format!("p{i}"), 0)).collect();
        let d = decide(&s, 2, &pods, &mut h, 0);
        assert_eq!(d.desired, 4);
        assert_eq!(d.rescale.as_deref(), Some("memory resource above target"));
        assert_eq!(d.current_metrics.len(), 2);
        // Memory missing everywhere: CPU alone may not scale down.
        let pods: Vec<_> = (0..2)
            .map(|i| PodFacts {
                memory_usage: None,
                ..busy(&format!("p{i}"), 0)
            })
            .collect();
        let d = decide(&s, 2, &pods, &mut h, 1000);
        assert_eq!(d.desired, 2);
        assert_eq!(find(&d, "ScalingActive").reason, "FailedGetResourceMetric");
    }

    #[test]
    fn no_metrics_means_cpu_at_80_percent() {
        let s = HorizontalPodAutoscalerSpec {
            max_replicas: 3,
            ..Default::default()
        };
        assert_eq!(
            metrics_of(&s),
            vec![Metric {
                resource: "cpu".into(),
                target: Target::Utilization(80)
            }]
        );
    }
}
