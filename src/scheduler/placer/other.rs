//! Resources beside cpu and memory: `ephemeral-storage` (bytes) and
//! extended resources (`example.com/dongle`, whole counts). Kept out of the
//! hot per-node slot: most pods ask for neither, and those that do take the
//! constrained walk, so the plain loop pays nothing for them.

use std::collections::BTreeMap;

use super::{EPHEMERAL, Placer, PodNeeds, REASONS};

/// Ephemeral storage and extended resources: what a node has allocatable,
/// or what a pod requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OtherResources {
    /// `ephemeral-storage` in bytes.
    pub ephemeral_bytes: u64,
    /// Extended resources by name, whole counts (no zero entries in a pod's).
    pub extended: BTreeMap<String, u64>,
}

impl OtherResources {
    /// Whether it asks for nothing (the common case).
    pub fn is_empty(&self) -> bool {
        self.ephemeral_bytes == 0 && self.extended.values().all(|v| *v == 0)
    }

    /// Adds what `o` holds.
    pub fn add(&mut self, o: &OtherResources) {
        self.ephemeral_bytes = self.ephemeral_bytes.saturating_add(o.ephemeral_bytes);
        for (k, v) in &o.extended {
            let e = self.extended.entry(k.clone()).or_default();
            *e = e.saturating_add(*v);
        }
    }

    /// The first resource of `want` that this allocatable, less `used`,
    /// has too little of: `ephemeral-storage` or an extended resource's name.
    pub fn short_of<'a>(
        &'a self,
        used: &OtherResources,
        want: &'a OtherResources,
    ) -> Option<&'a str> {
        if want.ephemeral_bytes > self.ephemeral_bytes.saturating_sub(used.ephemeral_bytes) {
            return Some(crate::resource::extended::EPHEMERAL_STORAGE);
        }
        want.extended.iter().find_map(|(name, n)| {
            let have = self.extended.get(name).copied().unwrap_or(0);
            let taken = used.extended.get(name).copied().unwrap_or(0);
            (*n > have.saturating_sub(taken)).then_some(name.as_str())
        })
    }

    fn sub(&mut self, o: &OtherResources) {
        self.ephemeral_bytes = self.ephemeral_bytes.saturating_sub(o.ephemeral_bytes);
        for (k, v) in &o.extended {
            if let Some(e) = self.extended.get_mut(k) {
                *e = e.saturating_sub(*v);
                if *e == 0 {
                    self.extended.remove(k);
                }
            }
        }
    }
}

/// The reason a node lacking the pod's `k`-th extended resource (in name
/// order) counts under: past the fixed [`REASONS`], one per resource.
pub(super) fn extended_reason(k: usize) -> usize {
    REASONS.len() + k
}

/// The reason text for a code [`Placer::other_lacks`] returned.
pub(super) fn reason_text(pod: &PodNeeds, code: usize) -> String {
    match code.checked_sub(REASONS.len()) {
        None => REASONS[code].to_string(),
        Some(k) => match pod.other.extended.keys().nth(k) {
            Some(name) => format!("insufficient {name}"),
            None => "insufficient extended resource".to_string(),
        },
    }
}

impl Placer {
    /// The first of the pod's other resources node `i` has too little of
    /// left: [`EPHEMERAL`] or an [`extended_reason`].
    pub(super) fn other_lacks(&self, i: usize, pod: &PodNeeds) -> Option<usize> {
        let (alloc, used) = (&self.other_alloc[i], &self.other_used[i]);
        if pod.other.ephemeral_bytes > alloc.ephemeral_bytes.saturating_sub(used.ephemeral_bytes) {
            return Some(EPHEMERAL);
        }
        for (k, (name, want)) in pod.other.extended.iter().enumerate() {
            let have = alloc.extended.get(name).copied().unwrap_or(0);
            let taken = used.extended.get(name).copied().unwrap_or(0);
            if *want > have.saturating_sub(taken) {
                return Some(extended_reason(k));
            }
        }
        None
    }

    /// Counts (or, with `add` false, takes back) the pod's other resources on node `i`.
    pub(super) fn account_other(&mut self, i: usize, pod: &PodNeeds, add: bool) {
        if pod.other.is_empty() {
            return;
        }
        if add {
            self.other_used[i].add(&pod.other);
        } else {
            self.other_used[i].sub(&pod.other);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{node, pod};
    use super::super::{NodeFit, Strategy};
    use super::*;

    fn with(mut n: NodeFit, ephemeral: u64, ext: &[(&str, u64)]) -> NodeFit {
        n.other.ephemeral_bytes = ephemeral;
        n.other.extended = ext.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        n
    }

    fn wants(name: &str, ephemeral: u64, ext: &[(&str, u64)]) -> PodNeeds {
        let mut p = pod(name, 0, 0);
        p.other.ephemeral_bytes = ephemeral;
        p.other.extended = ext.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        p
    }

    #[test]
    fn extended_resources_are_counted_as_integers() {
        let nodes = vec![
            with(node("plain", 4, 8), 0, &[]),
            with(node("dongle", 4, 8), 0, &[("example.com/dongle", 1)]),
        ];
        let mut p = Placer::new(nodes, Strategy::Spread);
        let one = wants("a", 0, &[("example.com/dongle", 1)]);
        assert_eq!(p.place(&one).as_deref(), Ok("dongle"));
        let e = p
            .place(&wants("b", 0, &[("example.com/dongle", 1)]))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "0/2 nodes: insufficient example.com/dongle (2)"
        );
        // A pod asking for nothing extra still goes anywhere.
        assert!(p.place(&pod("c", 0, 0)).is_ok());
        // Freeing the first makes room again.
        p.remove_bound("dongle", &one);
        assert_eq!(
            p.place(&wants("d", 0, &[("example.com/dongle", 1)]))
                .as_deref(),
            Ok("dongle")
        );
    }

    #[test]
    fn each_missing_resource_is_its_own_reason() {
        let nodes = vec![
            with(node("gpu", 4, 8), 1 << 30, &[("nvidia.com/gpu", 2)]),
            with(node("dongle", 4, 8), 1 << 30, &[("example.com/dongle", 2)]),
            with(node("small", 4, 8), 1 << 20, &[]),
            node("cpu", 0, 8),
        ];
        let mut p = Placer::new(nodes, Strategy::Pack);
        let both = wants(
            "a",
            10 << 20,
            &[("example.com/dongle", 1), ("nvidia.com/gpu", 1)],
        );
        let e = p.place(&both).unwrap_err();
        assert_eq!(
            e.to_string(),
            "0/4 nodes: insufficient ephemeral-storage (2), insufficient example.com/dongle (1), \
             insufficient nvidia.com/gpu (1)"
        );
        // Ephemeral storage alone: only nodes with room fit, and fill up.
        let disk = |n: &str| wants(n, 600 << 20, &[]);
        let mut placed: Vec<String> = Vec::new();
        for n in ["d1", "d2"] {
            placed.push(p.place(&disk(n)).unwrap_or_default());
        }
        placed.sort();
        assert_eq!(placed, vec!["dongle".to_string(), "gpu".to_string()]);
        let e = p.place(&disk("d3")).unwrap_err();
        assert_eq!(e.reasons.get("insufficient ephemeral-storage"), Some(&4));
    }

    #[test]
    fn preemption_frees_an_extended_resource() {
        use super::super::preempt::Victim;
        let nodes = vec![
            node("plain", 4, 8),
            with(node("dongle", 4, 8), 0, &[("example.com/dongle", 1)]),
        ];
        let mut p = Placer::new(nodes, Strategy::Pack);
        let low = wants("low", 0, &[("example.com/dongle", 1)]);
        p.add_bound("dongle", &low);
        // A cpu-only pod on the plain node is no use to evict.
        let other = pod("other", 1000, 0);
        p.add_bound("plain", &other);
        let high = wants("high", 0, &[("example.com/dongle", 1)]);
        assert!(p.place(&high).is_err());
        let victim = |needs: PodNeeds| Victim {
            needs,
            priority: 0,
            started: "2026-01-01T00:00:00Z".into(),
            guarded: false,
        };
        let bound = std::collections::BTreeMap::from([
            ("dongle".to_string(), vec![victim(low.clone())]),
            ("plain".to_string(), vec![victim(other)]),
        ]);
        let chosen = p.preempt(&high, 10, &bound).expect("a node to preempt on");
        assert_eq!(chosen.node, "dongle");
        assert_eq!(chosen.victims, vec![0]);
        // The placer is left as it was: still no room until the victim goes.
        assert!(p.place(&high).is_err());
        p.remove_bound("dongle", &low);
        assert_eq!(p.place(&high).as_deref(), Ok("dongle"));
    }
}
