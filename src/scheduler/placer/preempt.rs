//! Preemption, as Kubernetes' scheduler does it: a pod that fits nowhere
//! may evict pods of lower priority from one node to fit there. Pure, over
//! the [`Placer`]'s accounting: victims are taken out, the pod tried, and
//! every change undone before the next node is looked at.
//!
//! On each node, all pods of lower priority are taken out first; if the
//! pod then fits, the most important of them (higher priority, then the
//! longer running) are put back one by one while it still fits, those
//! covered by an exhausted disruption budget before the rest, so the
//! victims are the fewest and least important. Among nodes the choice is
//! Kubernetes' order: fewest budget violations, then the lowest highest
//! victim priority, then the smallest sum of priorities, then the fewest
//! victims.

use std::collections::BTreeMap;

use super::{Placer, PodNeeds};

/// A bound pod that a pod of higher priority may evict.
#[derive(Debug, Clone)]
pub struct Victim {
    /// What it holds on its node.
    pub needs: PodNeeds,
    /// Its `spec.priority` (0 when unset).
    pub priority: i32,
    /// When it was created (RFC 3339): among equals the newest goes first.
    pub started: String,
    /// Whether evicting it breaks a PodDisruptionBudget with no
    /// disruptions left.
    pub guarded: bool,
}

/// The node a preempting pod goes to and whom it evicts there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preemption {
    /// The node's name.
    pub node: String,
    /// Indexes into that node's victim list.
    pub victims: Vec<usize>,
}

/// Kubernetes' order of candidate nodes, lowest best.
type Cost = (usize, i64, i64, usize);

impl Placer {
    /// Where `pod` (of `priority`) fits by evicting some of `bound`, the
    /// evictable pods of each node; `None` when no eviction of lower
    /// priority pods makes room. The placer is left as it was.
    pub fn preempt(
        &mut self,
        pod: &PodNeeds,
        priority: i32,
        bound: &BTreeMap<String, Vec<Victim>>,
    ) -> Option<Preemption> {
        let mut best: Option<(Cost, Preemption)> = None;
        for (node, list) in bound {
            let Some(&i) = self.index.get(node) else {
                continue;
            };
            if self.slots[i].gate.is_some() {
                continue;
            }
            let Some(victims) = self.victims_on(i, node, pod, priority, list) else {
                continue;
            };
            let chosen = victims.iter().map(|v| &list[*v]);
            let cost: Cost = (
                chosen.clone().filter(|v| v.guarded).count(),
                chosen
                    .clone()
                    .map(|v| i64::from(v.priority))
                    .max()
                    .unwrap_or(i64::MIN),
                chosen.clone().map(|v| i64::from(v.priority)).sum(),
                victims.len(),
            );
            if best.as_ref().is_none_or(|(c, _)| cost < *c) {
                best = Some((
                    cost,
                    Preemption {
                        node: node.clone(),
                        victims,
                    },
                ));
            }
        }
        best.map(|(_, p)| p)
    }

    /// The fewest, least important pods of `list` whose eviction from node
    /// `i` lets `pod` fit; `None` if evicting all of lower priority does not.
    fn victims_on(
        &mut self,
        i: usize,
        node: &str,
        pod: &PodNeeds,
        priority: i32,
        list: &[Victim],
    ) -> Option<Vec<usize>> {
        let mut lower: Vec<usize> = (0..list.len())
            .filter(|v| list[*v].priority < priority)
            .collect();
        if lower.is_empty() {
            return None;
        }
        for v in &lower {
            self.remove_bound(node, &list[*v].needs);
        }
        if !self.fits(i, pod) {
            for v in &lower {
                self.account(i, &list[*v].needs);
            }
            return None;
        }
        // Put back the most important first: guarded ones, then higher
        // priority, then longer running.
        lower.sort_by(|a, b| {
            let (a, b) = (&list[*a], &list[*b]);
            b.guarded
                .cmp(&a.guarded)
                .then(b.priority.cmp(&a.priority))
                .then(a.started.cmp(&b.started))
        });
        let mut victims = Vec::new();
        for v in lower {
            self.account(i, &list[v].needs);
            if !self.fits(i, pod) {
                self.remove_bound(node, &list[v].needs);
                victims.push(v);
            }
        }
        for v in &victims {
            self.account(i, &list[*v].needs);
        }
        victims.sort_unstable();
        Some(victims)
    }

    /// Whether `pod` passes every filter on node `i` as the placer stands.
    fn fits(&mut self, i: usize, pod: &PodNeeds) -> bool {
        if self.filter(i, pod).is_some() {
            return false;
        }
        let rules = self.inter_rules(pod);
        self.constraints(i, pod, rules.as_ref()).is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Strategy;
    use super::super::tests::{node, pod};
    use super::*;

    fn victim(name: &str, cpu: u64, priority: i32, started: &str) -> Victim {
        Victim {
            needs: pod(name, cpu, 0),
            priority,
            started: started.into(),
            guarded: false,
        }
    }

    /// A placer with `bound` accounted on its nodes, and the victim lists.
    fn cluster(
        nodes: &[(&str, u64)],
        bound: Vec<(&str, Victim)>,
    ) -> (Placer, BTreeMap<String, Vec<Victim>>) {
        let mut p = Placer::new(
            nodes.iter().map(|(n, cores)| node(n, *cores, 8)).collect(),
            Strategy::Pack,
        );
        let mut by_node: BTreeMap<String, Vec<Victim>> = BTreeMap::new();
        for (n, v) in bound {
            p.add_bound(n, &v.needs);
            by_node.entry(n.to_string()).or_default().push(v);
        }
        (p, by_node)
    }

    fn names(p: &Preemption, by_node: &BTreeMap<String, Vec<Victim>>) -> Vec<String> {
        let list = &by_node[&p.node];
        p.victims
            .iter()
            .map(|i| list[*i].needs.key.name.clone())
            .collect()
    }

    #[test]
    fn evicts_the_fewest_least_important_pods_and_leaves_the_placer_as_it_was() {
        let (mut p, by_node) = cluster(
            &[("a", 2)],
            vec![
                ("a", victim("old", 500, 0, "2026-01-01T00:00:00Z")),
                ("a", victim("new", 500, 0, "2026-01-02T00:00:00Z")),
                ("a", victim("mid", 1000, 5, "2026-01-01T00:00:00Z")),
            ],
        );
        let big = pod("big", 500, 0);
        assert!(p.place(&big).is_err(), "the node is full");
        let got = p.preempt(&big, 10, &by_node).expect("preempts");
        assert_eq!(got.node, "a");
        // One 500m pod is enough: the newest of the lowest priority.
        assert_eq!(names(&got, &by_node), ["new"]);
        assert!(p.place(&big).is_err(), "nothing was taken out for real");
    }

    #[test]
    fn never_evicts_equal_or_higher_priorities() {
        let (mut p, by_node) = cluster(&[("a", 1)], vec![("a", victim("peer", 1000, 10, ""))]);
        assert_eq!(p.preempt(&pod("x", 500, 0), 10, &by_node), None);
        let (mut p, by_node) = cluster(&[("a", 1)], vec![("a", victim("low", 200, 1, ""))]);
        // Evicting every lower pod would still not make room.
        assert_eq!(p.preempt(&pod("x", 1500, 0), 10, &by_node), None);
    }

    #[test]
    fn chooses_the_node_whose_victims_matter_least() {
        let (mut p, by_node) = cluster(
            &[("a", 1), ("b", 1), ("c", 1)],
            vec![
                ("a", victim("a1", 1000, 5, "")),
                ("b", victim("b1", 500, 1, "")),
                ("b", victim("b2", 500, 1, "")),
                ("c", victim("c1", 1000, 1, "")),
            ],
        );
        let got = p
            .preempt(&pod("x", 1000, 0), 10, &by_node)
            .expect("preempts");
        // b and c both top out at priority 1; c's sum (1) beats b's (2).
        assert_eq!(got.node, "c");
        assert_eq!(names(&got, &by_node), ["c1"]);
    }

    #[test]
    fn a_budget_protected_pod_is_spared_when_another_will_do() {
        let mut guarded = victim("guarded", 1000, 0, "");
        guarded.guarded = true;
        let (mut p, by_node) = cluster(
            &[("a", 1), ("b", 1)],
            vec![("a", guarded), ("b", victim("free", 1000, 3, ""))],
        );
        let got = p
            .preempt(&pod("x", 1000, 0), 10, &by_node)
            .expect("preempts");
        assert_eq!(names(&got, &by_node), ["free"]);
    }

    #[test]
    fn down_nodes_are_not_candidates() {
        let mut down = node("a", 1, 8);
        down.alive = false;
        let mut p = Placer::new(vec![down], Strategy::Pack);
        let v = victim("v", 1000, 0, "");
        p.add_bound("a", &v.needs);
        let by_node = BTreeMap::from([("a".to_string(), vec![v])]);
        assert_eq!(p.preempt(&pod("x", 500, 0), 10, &by_node), None);
    }
}
