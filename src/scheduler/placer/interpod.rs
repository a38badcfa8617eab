//! Placement relative to other pods: pod affinity and anti-affinity
//! (required terms filter, preferred terms score), the anti-affinity of
//! pods already placed (a pod may not land where an existing pod's required
//! anti-affinity forbids it), and topology spread constraints.
//!
//! Kept apart from the placer's hot loop: pods are tracked (namespace,
//! labels, node, an index by label pair) only in a pass where some pod has
//! such rules, and a placement builds, once, a per-domain verdict for each
//! rule ([`Rules`]); the walk over nodes then costs one array lookup per
//! rule and node. Counting the pods a term selects starts from the smallest
//! posting list of its `matchLabels` (or its `In` values), so a term that
//! selects one app's pods reads those pods, not the cluster's.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::resource::ObjectKey;
use crate::resource::types::{
    Affinity, LabelSelector, NodeAffinity, SelectorOperator, Taint, TaintEffect, Toleration,
    TopologySpreadConstraint, WhenUnsatisfiable, selector_with_own_labels, untolerated,
};

/// A node without the topology key, or a domain not seen.
pub const NO_DOMAIN: u32 = u32::MAX;
/// A tracked pod that was removed.
const GONE: u32 = u32::MAX;

/// Score a node earns for the pod's preferred pod affinity at its fullest
/// (or loses for preferred anti-affinity), as much as preferred node
/// affinity: Kubernetes weighs both plugins alike.
pub const POD_AFFINITY_WEIGHT: f64 = 3.0;
/// Score a node loses for a ScheduleAnyway spread constraint at its worst.
pub const SPREAD_WEIGHT: f64 = 3.0;

/// Which namespaces a term searches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespaces {
    /// Every namespace (`namespaceSelector: {}`).
    All,
    /// These (the pod's own when the term names none).
    Only(Vec<String>),
}

impl Namespaces {
    fn contains(&self, ns: &str) -> bool {
        match self {
            Namespaces::All => true,
            Namespaces::Only(v) => v.iter().any(|n| n == ns),
        }
    }
}

/// One term, resolved against the pod that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The pods it counts (the pod's `matchLabelKeys` folded in).
    pub selector: LabelSelector,
    pub namespaces: Namespaces,
    pub topology_key: String,
}

/// A topology spread constraint, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spread {
    pub max_skew: u32,
    pub topology_key: String,
    /// DoNotSchedule (a filter) rather than ScheduleAnyway (a score).
    pub hard: bool,
    /// `None` counts no pod.
    pub selector: Option<LabelSelector>,
    pub min_domains: u32,
    /// Whether the pod's node selector and affinity limit the domains.
    pub honor_affinity: bool,
    /// Whether nodes with taints the pod does not tolerate are left out.
    pub honor_taints: bool,
}

/// A pod's rules about other pods.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterPod {
    /// Required pod affinity: each must hold.
    pub affinity: Vec<Term>,
    /// Required pod anti-affinity: each must hold.
    pub anti: Vec<Term>,
    /// Preferred terms with their weight, negative for anti-affinity.
    pub preferred: Vec<(i32, Term)>,
    pub spread: Vec<Spread>,
}

impl InterPod {
    /// The rules of a pod (its `affinity` and `topologySpreadConstraints`)
    /// in namespace `ns` with labels `own`; `None` when it has none.
    pub fn of(
        affinity: Option<&Affinity>,
        spread: &[TopologySpreadConstraint],
        ns: &str,
        own: &BTreeMap<String, String>,
    ) -> Option<InterPod> {
        let term = |t: &crate::resource::types::PodAffinityTerm| -> Term {
            // An absent selector selects nothing: the term counts no pod.
            let selector = selector_with_own_labels(
                t.label_selector.as_ref(),
                &t.match_label_keys,
                &t.mismatch_label_keys,
                own,
            );
            let namespaces = if t.namespace_selector.is_some() {
                Namespaces::All
            } else if t.namespaces.is_empty() {
                Namespaces::Only(vec![ns.to_string()])
            } else {
                Namespaces::Only(t.namespaces.clone())
            };
            Term {
                selector: selector.unwrap_or_else(nothing),
                namespaces,
                topology_key: t.topology_key.clone(),
            }
        };
        let mut rules = InterPod::default();
        for (sign, a) in [
            (1, affinity.and_then(|a| a.pod_affinity.as_ref())),
            (-1, affinity.and_then(|a| a.pod_anti_affinity.as_ref())),
        ] {
            let Some(a) = a else { continue };
            let required = a
                .required_during_scheduling_ignored_during_execution
                .iter()
                .map(term);
            if sign > 0 {
                rules.affinity.extend(required);
            } else {
                rules.anti.extend(required);
            }
            for w in &a.preferred_during_scheduling_ignored_during_execution {
                rules
                    .preferred
                    .push((sign * w.weight, term(&w.pod_affinity_term)));
            }
        }
        for c in spread {
            rules.spread.push(Spread {
                max_skew: u32::try_from(c.max_skew).unwrap_or(1).max(1),
                topology_key: c.topology_key.clone(),
                hard: c.when_unsatisfiable == WhenUnsatisfiable::DoNotSchedule,
                selector: selector_with_own_labels(
                    c.label_selector.as_ref(),
                    &c.match_label_keys,
                    &[],
                    own,
                ),
                min_domains: c
                    .min_domains
                    .and_then(|m| u32::try_from(m).ok())
                    .unwrap_or(1),
                honor_affinity: c.node_affinity_policy
                    != Some(crate::resource::types::InclusionPolicy::Ignore),
                honor_taints: c.node_taints_policy
                    == Some(crate::resource::types::InclusionPolicy::Honor),
            });
        }
        let empty = rules.affinity.is_empty()
            && rules.anti.is_empty()
            && rules.preferred.is_empty()
            && rules.spread.is_empty();
        (!empty).then_some(rules)
    }
}

/// A selector that matches no pod (a term without `labelSelector`).
fn nothing() -> LabelSelector {
    LabelSelector {
        match_expressions: vec![crate::resource::types::LabelSelectorRequirement {
            key: "shoal.io/never".into(),
            operator: SelectorOperator::In,
            values: Vec::new(),
        }],
        ..Default::default()
    }
}

/// The pods placed so far, as inter-pod rules see them.
#[derive(Debug, Default)]
pub struct Tracked {
    node: Vec<u32>,
    ns: Vec<Arc<str>>,
    labels: Vec<Arc<BTreeMap<String, String>>>,
    keys: HashMap<ObjectKey, u32>,
    postings: HashMap<(String, String), Vec<u32>>,
    /// Pods with required anti-affinity, which every later pod must respect.
    holders: HashMap<u32, Arc<InterPod>>,
    /// Their terms (pod id, term index) by a label pair the term's selector
    /// requires, so a placement reads only terms that may select its pod.
    holder_index: HashMap<(String, String), Vec<(u32, usize)>>,
    /// Terms whose selector requires no single label pair: read every time.
    holder_scan: Vec<(u32, usize)>,
    /// Per topology key, each node's domain id and the number of domains.
    topology: HashMap<String, (Arc<Vec<u32>>, usize)>,
}

/// What a placement needs to know of the nodes.
pub struct NodeView<'a> {
    pub names: &'a [String],
    pub labels: &'a [BTreeMap<String, String>],
    pub taints: &'a [Vec<Taint>],
}

impl Tracked {
    /// Records `key` (namespace `ns`, `labels`, its rules) on node `node`.
    pub fn add(
        &mut self,
        key: &ObjectKey,
        node: u32,
        labels: Arc<BTreeMap<String, String>>,
        rules: Option<&Arc<InterPod>>,
    ) {
        let id = u32::try_from(self.node.len()).unwrap_or(GONE);
        for (k, v) in labels.iter() {
            self.postings
                .entry((k.clone(), v.clone()))
                .or_default()
                .push(id);
        }
        self.node.push(node);
        self.ns.push(Arc::from(key.namespace.as_str()));
        self.labels.push(labels);
        self.keys.insert(key.clone(), id);
        if let Some(r) = rules.filter(|r| !r.anti.is_empty()) {
            for (ti, t) in r.anti.iter().enumerate() {
                match required_pair(&t.selector) {
                    Some(pair) => self.holder_index.entry(pair).or_default().push((id, ti)),
                    None => self.holder_scan.push((id, ti)),
                }
            }
            self.holders.insert(id, r.clone());
        }
    }

    /// Forgets `key` (deleted or finished).
    pub fn remove(&mut self, key: &ObjectKey) {
        if let Some(id) = self.keys.remove(key) {
            self.node[id as usize] = GONE;
            // Index entries of a removed pod are skipped when read.
            self.holders.remove(&id);
        }
    }

    /// Each node's domain under `key`, built once per pass.
    fn domains(&mut self, key: &str, nodes: &NodeView<'_>) -> (Arc<Vec<u32>>, usize) {
        if let Some(d) = self.topology.get(key) {
            return d.clone();
        }
        let mut ids: HashMap<&str, u32> = HashMap::new();
        let per_node: Vec<u32> = nodes
            .labels
            .iter()
            .map(|l| match l.get(key) {
                Some(v) => {
                    let next = u32::try_from(ids.len()).unwrap_or(NO_DOMAIN);
                    *ids.entry(v.as_str()).or_insert(next)
                }
                None => NO_DOMAIN,
            })
            .collect();
        let d = (Arc::new(per_node), ids.len());
        self.topology.insert(key.to_string(), d.clone());
        d
    }

    /// Tracked pods that `selector` in `namespaces` selects (their ids).
    fn selected(&self, selector: &LabelSelector, namespaces: &Namespaces) -> Vec<u32> {
        let keep = |id: &u32| {
            let i = *id as usize;
            self.node[i] != GONE
                && namespaces.contains(&self.ns[i])
                && selector.matches(&self.labels[i])
        };
        // The narrowest posting list the selector implies, if any.
        let mut best: Option<Vec<u32>> = None;
        for (k, v) in &selector.match_labels {
            let list = self
                .postings
                .get(&(k.clone(), v.clone()))
                .cloned()
                .unwrap_or_default();
            if best.as_ref().is_none_or(|b| list.len() < b.len()) {
                best = Some(list);
            }
        }
        if best.is_none()
            && let Some(r) = selector
                .match_expressions
                .iter()
                .find(|r| r.operator == SelectorOperator::In)
        {
            let mut list = Vec::new();
            for v in &r.values {
                if let Some(p) = self.postings.get(&(r.key.clone(), v.clone())) {
                    list.extend_from_slice(p);
                }
            }
            best = Some(list);
        }
        match best {
            Some(list) => list.into_iter().filter(keep).collect(),
            None => (0..u32::try_from(self.node.len()).unwrap_or(0))
                .filter(keep)
                .collect(),
        }
    }

    /// Matching pods per domain of `domains`, counting only pods on nodes
    /// `eligible` allows.
    fn count(
        &self,
        ids: &[u32],
        domains: &[u32],
        n_domains: usize,
        eligible: Option<&[bool]>,
    ) -> Vec<u32> {
        let mut counts = vec![0u32; n_domains];
        for &id in ids {
            let node = self.node[id as usize] as usize;
            if eligible.is_some_and(|e| !e.get(node).copied().unwrap_or(false)) {
                continue;
            }
            if let Some(&d) = domains.get(node)
                && d != NO_DOMAIN
            {
                counts[d as usize] += 1;
            }
        }
        counts
    }

    /// The rules that apply to placing `pod` (its own and those of pods
    /// placed before it), resolved per domain; `None` when none apply.
    pub fn rules_for(&mut self, pod: &PlacementPod<'_>, nodes: &NodeView<'_>) -> Option<Rules> {
        let mut rules = Rules::default();
        if let Some(own) = pod.rules {
            self.own_rules(own, pod, nodes, &mut rules);
        }
        // Existing pods' required anti-affinity that selects this pod: the
        // nodes of those pods, by the topology key of their term.
        let mut forbidden: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        if !self.holders.is_empty() {
            let candidates = pod
                .labels
                .iter()
                .filter_map(|(k, v)| self.holder_index.get(&(k.clone(), v.clone())))
                .flatten()
                .chain(&self.holder_scan);
            for &(id, ti) in candidates {
                let Some(t) = self.holders.get(&id).and_then(|r| r.anti.get(ti)) else {
                    continue;
                };
                let node = self.node[id as usize];
                if node != GONE
                    && t.namespaces.contains(pod.namespace)
                    && t.selector.matches(pod.labels)
                {
                    forbidden
                        .entry(t.topology_key.clone())
                        .or_default()
                        .push(node);
                }
            }
        }
        for (key, held) in forbidden {
            let (domains, n) = self.domains(&key, nodes);
            let mut ok = vec![true; n];
            for node in held {
                if let Some(&d) = domains.get(node as usize)
                    && d != NO_DOMAIN
                {
                    ok[d as usize] = false;
                }
            }
            rules.filters.push(Filter {
                domains,
                ok,
                missing_ok: true,
                reason: Reason::ExistingAntiAffinity,
            });
        }
        (!rules.filters.is_empty() || !rules.scores.is_empty()).then_some(rules)
    }

    /// The pod's own rules, resolved per domain, into `rules`.
    fn own_rules(
        &mut self,
        own: &InterPod,
        pod: &PlacementPod<'_>,
        nodes: &NodeView<'_>,
        rules: &mut Rules,
    ) {
        for t in &own.affinity {
            let (domains, n) = self.domains(&t.topology_key, nodes);
            let ids = self.selected(&t.selector, &t.namespaces);
            let counts = self.count(&ids, &domains, n, None);
            // The first pod of a group that selects itself may go anywhere
            // the key exists, or no such group could ever start.
            let ok = if ids.is_empty()
                && t.namespaces.contains(pod.namespace)
                && t.selector.matches(pod.labels)
            {
                vec![true; n]
            } else {
                counts.iter().map(|c| *c > 0).collect()
            };
            rules.filters.push(Filter {
                domains,
                ok,
                missing_ok: false,
                reason: Reason::Affinity,
            });
        }
        for t in &own.anti {
            let (domains, n) = self.domains(&t.topology_key, nodes);
            let ids = self.selected(&t.selector, &t.namespaces);
            let counts = self.count(&ids, &domains, n, None);
            rules.filters.push(Filter {
                domains,
                ok: counts.iter().map(|c| *c == 0).collect(),
                missing_ok: true,
                reason: Reason::AntiAffinity,
            });
        }
        for (weight, t) in &own.preferred {
            let (domains, n) = self.domains(&t.topology_key, nodes);
            let ids = self.selected(&t.selector, &t.namespaces);
            let counts = self.count(&ids, &domains, n, None);
            let max = counts.iter().copied().max().unwrap_or(0);
            if max == 0 {
                continue;
            }
            let scale = POD_AFFINITY_WEIGHT * f64::from(*weight) / 100.0 / f64::from(max);
            rules.scores.push(Score {
                domains,
                by_domain: counts.iter().map(|c| scale * f64::from(*c)).collect(),
                missing: 0.0,
            });
        }
        for s in &own.spread {
            let (domains, n) = self.domains(&s.topology_key, nodes);
            let eligible = spread_eligible(s, pod, nodes);
            // Domains that hold an eligible node: the ones the skew is over.
            let mut present = vec![false; n];
            for (i, d) in domains.iter().enumerate() {
                if *d != NO_DOMAIN && eligible.as_ref().is_none_or(|e| e[i]) {
                    present[*d as usize] = true;
                }
            }
            let ids = match &s.selector {
                Some(sel) => self.selected(sel, &Namespaces::Only(vec![pod.namespace.into()])),
                None => Vec::new(),
            };
            let counts = self.count(&ids, &domains, n, eligible.as_deref());
            let live = present.iter().filter(|p| **p).count();
            let min = if (live as u64) < u64::from(s.min_domains) {
                0
            } else {
                counts
                    .iter()
                    .zip(&present)
                    .filter(|(_, p)| **p)
                    .map(|(c, _)| *c)
                    .min()
                    .unwrap_or(0)
            };
            let own_match = u32::from(
                s.selector
                    .as_ref()
                    .is_some_and(|sel| sel.matches(pod.labels)),
            );
            if s.hard {
                let ok = counts
                    .iter()
                    .map(|c| (c + own_match).saturating_sub(min) <= s.max_skew)
                    .collect();
                rules.filters.push(Filter {
                    domains,
                    ok,
                    missing_ok: false,
                    reason: Reason::Spread,
                });
            } else {
                let max = counts.iter().copied().max().unwrap_or(0);
                let range = f64::from(max.saturating_sub(min).max(1));
                rules.scores.push(Score {
                    by_domain: counts
                        .iter()
                        .map(|c| -SPREAD_WEIGHT * f64::from(c.saturating_sub(min)) / range)
                        .collect(),
                    domains,
                    missing: -SPREAD_WEIGHT,
                });
            }
        }
    }
}

/// A label pair every pod the selector matches must carry, if there is one
/// (a `matchLabels` entry, or an `In` with a single value).
fn required_pair(s: &LabelSelector) -> Option<(String, String)> {
    if let Some((k, v)) = s.match_labels.iter().next() {
        return Some((k.clone(), v.clone()));
    }
    s.match_expressions
        .iter()
        .find(|r| r.operator == SelectorOperator::In && r.values.len() == 1)
        .map(|r| (r.key.clone(), r.values[0].clone()))
}

/// The nodes a spread constraint counts over, `None` for all of them.
fn spread_eligible(s: &Spread, pod: &PlacementPod<'_>, nodes: &NodeView<'_>) -> Option<Vec<bool>> {
    let by_affinity =
        s.honor_affinity && (!pod.node_selector.is_empty() || pod.node_affinity.is_some());
    if !by_affinity && !s.honor_taints {
        return None;
    }
    const HARD: [TaintEffect; 2] = [TaintEffect::NoSchedule, TaintEffect::NoExecute];
    Some(
        (0..nodes.names.len())
            .map(|i| {
                let labels = &nodes.labels[i];
                let affinity_ok = !by_affinity
                    || (pod
                        .node_selector
                        .iter()
                        .all(|(k, v)| labels.get(k) == Some(v))
                        && pod
                            .node_affinity
                            .is_none_or(|a| a.required_matches(&nodes.names[i], labels)));
                let taints_ok = !s.honor_taints
                    || untolerated(&nodes.taints[i], pod.tolerations, &HARD).is_none();
                affinity_ok && taints_ok
            })
            .collect(),
    )
}

/// The pod being placed, as its rules need it.
pub struct PlacementPod<'a> {
    pub namespace: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub rules: Option<&'a InterPod>,
    pub node_selector: &'a BTreeMap<String, String>,
    pub node_affinity: Option<&'a NodeAffinity>,
    pub tolerations: &'a [Toleration],
}

/// Why a rule keeps a pod off a node (the placer's reason for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Affinity,
    AntiAffinity,
    ExistingAntiAffinity,
    Spread,
}

/// One rule as a per-domain verdict.
#[derive(Debug)]
pub struct Filter {
    domains: Arc<Vec<u32>>,
    ok: Vec<bool>,
    /// The verdict for a node without the topology key.
    missing_ok: bool,
    pub reason: Reason,
}

/// One preference as a per-domain score.
#[derive(Debug)]
struct Score {
    domains: Arc<Vec<u32>>,
    by_domain: Vec<f64>,
    missing: f64,
}

/// The inter-pod rules of one placement.
#[derive(Debug, Default)]
pub struct Rules {
    filters: Vec<Filter>,
    scores: Vec<Score>,
}

impl Rules {
    /// The first rule node `i` breaks, if any.
    pub fn refuses(&self, i: usize) -> Option<Reason> {
        self.filters.iter().find_map(|f| {
            let ok = match f.domains.get(i).copied().unwrap_or(NO_DOMAIN) {
                NO_DOMAIN => f.missing_ok,
                d => f.ok.get(d as usize).copied().unwrap_or(f.missing_ok),
            };
            (!ok).then_some(f.reason)
        })
    }

    /// What node `i` earns or loses by the preferences.
    pub fn score(&self, i: usize) -> f64 {
        self.scores
            .iter()
            .map(|s| match s.domains.get(i).copied().unwrap_or(NO_DOMAIN) {
                NO_DOMAIN => s.missing,
                d => s.by_domain.get(d as usize).copied().unwrap_or(s.missing),
            })
            .sum()
    }
}

#[cfg(test)]
mod tests;
