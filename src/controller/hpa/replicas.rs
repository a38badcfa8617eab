//! Kubernetes' replica calculation for one `Resource` metric, pure:
//! `desired = ceil(current × usageRatio)` over the pods that have metrics,
//! with a tolerance, and Kubernetes' treatment of pods that are not ready
//! or have no metrics (replica_calculator.go).

/// Kubernetes' default tolerance: no change while the ratio is within 10%.
pub const TOLERANCE: f64 = 0.1;

/// What a metric aims at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Average use as a percentage of the pods' requests.
    Utilization(u32),
    /// Average use per pod, in milli-units (millicores; bytes × 1000).
    AverageValue(u64),
}

/// One pod of the target, as the calculation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInput {
    /// Its name (for messages).
    pub name: String,
    /// Being deleted or Failed: left out entirely.
    pub ignored: bool,
    /// Not ready yet: for CPU, its usage is not trusted (start-up spikes).
    pub unready: bool,
    /// The sum of its containers' requests for the resource, in
    /// milli-units; `Err(container)` names a container without one.
    pub request: Result<u64, String>,
    /// Its usage in milli-units, if its node reported it.
    pub usage: Option<u64>,
}

/// A metric's proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proposal {
    /// Replicas the metric asks for.
    pub replicas: u32,
    /// Utilization of ready pods with metrics, percent (Utilization targets).
    pub utilization: Option<u32>,
    /// Average use of ready pods with metrics, milli-units.
    pub average: u64,
}

/// Why a metric gave no proposal (`FailedGetResourceMetric`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricError {
    /// A container has no request for a Utilization target.
    #[error("missing request for {resource} in container {container} of Pod {pod}")]
    MissingRequest {
        /// `cpu` or `memory`.
        resource: String,
        /// The container.
        container: String,
        /// The pod.
        pod: String,
    },
    /// No ready pod had metrics.
    #[error("did not receive metrics for targeted pods (pods might be unready)")]
    NoMetrics,
    /// No pods at all.
    #[error("no pods returned by selector while calculating replica count")]
    NoPods,
}

#[derive(Debug, Clone, Copy)]
struct Counted {
    usage: u64,
    request: u64,
}

fn ratio(points: &[Counted], target: Target) -> (f64, Option<u32>, u64) {
    let usage: u64 = points.iter().map(|p| p.usage).sum();
    let n = points.len().max(1) as u64;
    match target {
        Target::Utilization(t) => {
            let request: u64 = points.iter().map(|p| p.request).sum();
            // Integer percent as Kubernetes computes it, so ratios match.
            let util = (u128::from(usage) * 100 / u128::from(request.max(1))) as u64;
            let util32 = u32::try_from(util).unwrap_or(u32::MAX);
            (util as f64 / f64::from(t.max(1)), Some(util32), usage / n)
        }
        Target::AverageValue(t) => {
            let avg = usage as f64 / n as f64;
            (avg / (t.max(1) as f64), None, usage / n)
        }
    }
}

/// The replicas one metric proposes for a target now at `current`.
pub fn replicas_for_metric(
    resource: &str,
    current: u32,
    target: Target,
    pods: &[PodInput],
    tolerance: f64,
) -> Result<Proposal, MetricError> {
    if pods.is_empty() {
        return Err(MetricError::NoPods);
    }
    let mut ready = Vec::new();
    let mut unready = Vec::new();
    let mut missing = Vec::new();
    for p in pods.iter().filter(|p| !p.ignored) {
        let request = match (&p.request, target) {
            (Ok(r), _) => *r,
            (Err(c), Target::Utilization(_)) => {
                return Err(MetricError::MissingRequest {
                    resource: resource.to_string(),
                    container: c.clone(),
                    pod: p.name.clone(),
                });
            }
            (Err(_), Target::AverageValue(_)) => 0,
        };
        match p.usage {
            None => missing.push(request),
            // Only CPU is distorted while a pod starts; memory counts as is.
            Some(_) if p.unready && resource == "cpu" => unready.push(request),
            Some(u) => ready.push(Counted { usage: u, request }),
        }
    }
    if ready.is_empty() {
        return Err(MetricError::NoMetrics);
    }
    let (usage_ratio, utilization, average) = ratio(&ready, target);
    let proposal = |replicas| Proposal {
        replicas,
        utilization,
        average,
    };
    let scale_up_with_unready = !unready.is_empty() && usage_ratio > 1.0;
    if !scale_up_with_unready && missing.is_empty() {
        if (1.0 - usage_ratio).abs() <= tolerance {
            return Ok(proposal(current));
        }
        return Ok(proposal(ceil(usage_ratio * ready.len() as f64)));
    }
    // Fill in the pods left out, pessimistically for the direction taken:
    // on a scale-down a pod without metrics is assumed at 100% of its
    // request (or at the target when that is higher), on a scale-up at 0%;
    // unready pods count as 0% on a scale-up.
    let mut all = ready.clone();
    for request in missing {
        let usage = if usage_ratio < 1.0 {
            match target {
                Target::Utilization(t) => request * u64::from(t.max(100)) / 100,
                Target::AverageValue(t) => t,
            }
        } else {
            0
        };
        // At exactly 1.0 Kubernetes leaves them out of the recount.
        if usage_ratio != 1.0 {
            all.push(Counted { usage, request });
        }
    }
    if scale_up_with_unready {
        all.extend(unready.iter().map(|&request| Counted { usage: 0, request }));
    }
    let (new_ratio, _, _) = ratio(&all, target);
    if (1.0 - new_ratio).abs() <= tolerance
        || (usage_ratio < 1.0 && new_ratio > 1.0)
        || (usage_ratio > 1.0 && new_ratio < 1.0)
    {
        // Too small a change, or the filled-in pods flip the direction.
        return Ok(proposal(current));
    }
    let replicas = ceil(new_ratio * all.len() as f64);
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return Ok(proposal(current));
    }
    Ok(proposal(replicas))
}

fn ceil(x: f64) -> u32 {
    let c = x.ceil();
    if c <= 0.0 {
        0
    } else if c >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        c as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, request: u64, usage: Option<u64>) -> PodInput {
        PodInput {
            name: name.into(),
            ignored: false,
            unready: false,
            request: Ok(request),
            usage,
        }
    }

    fn cpu(current: u32, target: u32, pods: &[PodInput]) -> Result<Proposal, MetricError> {
        replicas_for_metric("cpu", current, Target::Utilization(target), pods, TOLERANCE)
    }

    #[test]
    fn scales_by_the_usage_ratio_rounding_up() {
        // Three pods at 100m of 100m requested, target 50%: ratio 2 → 6.
        let pods: Vec<_> = (0..3)
            .map(|i| pod(&format!("p{i}"), 100, Some(100)))
            .collect();
        let p = cpu(3, 50, &pods).expect("ok");
        assert_eq!(p.replicas, 6);
        assert_eq!(p.utilization, Some(100));
        // 63% against 50%: ratio 1.26 → ceil(3.78) = 4.
        let pods: Vec<_> = (0..3)
            .map(|i| pod(&format!("p{i}"), 100, Some(63)))
            .collect();
        assert_eq!(cpu(3, 50, &pods).expect("ok").replicas, 4);
        // Scale down: 10% against 50% → ceil(0.6) = 1.
        let pods: Vec<_> = (0..3)
            .map(|i| pod(&format!("p{i}"), 100, Some(10)))
            .collect();
        assert_eq!(cpu(3, 50, &pods).expect("ok").replicas, 1);
    }

    #[test]
    fn within_tolerance_nothing_changes() {
        // 55% is a ratio of 1.1000000000000001 in floating point, just
        // outside: Kubernetes scales there too.
        for usage in [45, 50, 54] {
            let pods: Vec<_> = (0..4)
                .map(|i| pod(&format!("p{i}"), 100, Some(usage)))
                .collect();
            assert_eq!(cpu(4, 50, &pods).expect("ok").replicas, 4, "{usage}");
        }
        // Just outside: 56% is a ratio of 1.12.
        let pods: Vec<_> = (0..4)
            .map(|i| pod(&format!("p{i}"), 100, Some(56)))
            .collect();
        assert_eq!(cpu(4, 50, &pods).expect("ok").replicas, 5);
    }

    #[test]
    fn a_container_without_a_request_fails_utilization_but_not_average_value() {
        let mut p = pod("web-1", 0, Some(10));
        p.request = Err("app".into());
        let e = cpu(1, 50, &[p.clone()]).expect_err("no request");
        assert_eq!(
            e.to_string(),
            "missing request for cpu in container app of Pod web-1"
        );
        let ok = replicas_for_metric("cpu", 1, Target::AverageValue(5), &[p], TOLERANCE)
            .expect("average value needs no request");
        assert_eq!(ok.replicas, 2);
    }

    #[test]
    fn no_ready_pod_with_metrics_is_an_error() {
        assert_eq!(
            cpu(1, 50, &[pod("a", 100, None)]),
            Err(MetricError::NoMetrics)
        );
        assert_eq!(cpu(1, 50, &[]), Err(MetricError::NoPods));
        let mut unready = pod("a", 100, Some(500));
        unready.unready = true;
        assert_eq!(cpu(1, 50, &[unready]), Err(MetricError::NoMetrics));
    }

    #[test]
    fn missing_metrics_count_as_full_request_on_scale_down() {
        // Two pods at 10% and one without metrics, target 50%. Ready ratio
        // 0.2; the missing pod at 100% makes (10+10+100)/300 = 40% → 0.8,
        // ceil(0.8 × 3) = 3: no scale-down, as Kubernetes.
        let pods = [
            pod("a", 100, Some(10)),
            pod("b", 100, Some(10)),
            pod("c", 100, None),
        ];
        assert_eq!(cpu(3, 50, &pods).expect("ok").replicas, 3);
        // Many idle pods outweigh one missing: (0×5 + 100)/600 = 16% → 0.32 → 2.
        let mut pods: Vec<_> = (0..5)
            .map(|i| pod(&format!("p{i}"), 100, Some(0)))
            .collect();
        pods.push(pod("m", 100, None));
        assert_eq!(cpu(6, 50, &pods).expect("ok").replicas, 2);
    }

    #[test]
    fn missing_metrics_count_as_zero_on_scale_up() {
        // One pod at 200% of its request, one missing, target 50%: ready
        // ratio 4; with the missing at 0%, 100% → ratio 2 → 4 replicas.
        let pods = [pod("a", 100, Some(200)), pod("b", 100, None)];
        assert_eq!(cpu(2, 50, &pods).expect("ok").replicas, 4);
        // A missing pod that would flip the direction keeps the count:
        // 60% ready (ratio 1.2), with two missing at 0%: 20% → 0.4.
        let pods = [
            pod("a", 100, Some(60)),
            pod("b", 100, None),
            pod("c", 100, None),
        ];
        assert_eq!(cpu(3, 50, &pods).expect("ok").replicas, 3);
    }

    #[test]
    fn unready_pods_count_as_zero_on_scale_up_only() {
        let mut u = pod("u", 100, Some(900));
        u.unready = true;
        // Ready pod at 100% (ratio 2); the unready at 0%: 50% → ratio 1.0:
        // within tolerance, so no change.
        assert_eq!(
            cpu(2, 50, &[pod("a", 100, Some(100)), u.clone()])
                .expect("ok")
                .replicas,
            2
        );
        // Ready pod at 200% (ratio 4): with the unready at 0%, 100% → 2 × 2 = 4.
        assert_eq!(
            cpu(2, 50, &[pod("a", 100, Some(200)), u.clone()])
                .expect("ok")
                .replicas,
            4
        );
        // On a scale-down unready pods are just left out: 10% → ceil(0.2) = 1.
        assert_eq!(
            cpu(2, 50, &[pod("a", 100, Some(10)), u.clone()])
                .expect("ok")
                .replicas,
            1
        );
        // Memory does not distrust unready pods.
        let p = replicas_for_metric(
            "memory",
            2,
            Target::Utilization(50),
            &[pod("a", 100, Some(100)), u],
            TOLERANCE,
        )
        .expect("ok");
        assert_eq!(p.utilization, Some(500));
        assert_eq!(p.replicas, 20);
    }

    #[test]
    fn ignored_pods_are_left_out() {
        let mut gone = pod("gone", 100, Some(1000));
        gone.ignored = true;
        assert_eq!(
            cpu(2, 50, &[pod("a", 100, Some(50)), gone])
                .expect("ok")
                .replicas,
            2
        );
    }

    #[test]
    fn average_value_targets_divide_by_pod_count() {
        // 300m + 100m over two pods = 200m average against 100m → 4.
        let pods = [pod("a", 0, Some(300)), pod("b", 0, Some(100))];
        let p =
            replicas_for_metric("cpu", 2, Target::AverageValue(100), &pods, TOLERANCE).expect("ok");
        assert_eq!((p.replicas, p.average, p.utilization), (4, 200, None));
        // Missing pods on a scale-down are assumed at the target.
        let pods = [
            pod("a", 0, Some(10)),
            pod("b", 0, Some(10)),
            pod("c", 0, None),
        ];
        let p =
            replicas_for_metric("cpu", 3, Target::AverageValue(100), &pods, TOLERANCE).expect("ok");
        assert_eq!(p.replicas, 2);
    }
}
