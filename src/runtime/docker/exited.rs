//! What `list` learned by inspecting exited containers. An exited container
//! never changes again under shoal (the restart policy is `no`, and the agent
//! replaces a container rather than restart it), so inspecting each of them on
//! every pass only costs the engine time: a node keeping a finished Job's
//! thousand containers spent most of a pass in those inspects.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use crate::runtime::{ContainerInfo, ContainerState};

/// At most this many exited containers are remembered; past it `list`
/// inspects the rest as before (about 1 KiB each).
const MAX_ENTRIES: usize = 50_000;

/// Inspected state of exited containers, by engine id.
#[derive(Debug, Default)]
pub(super) struct ExitedCache {
    entries: Mutex<HashMap<String, ContainerInfo>>,
}

impl ExitedCache {
    /// The remembered state of container `id`, if it had exited and the
    /// engine's list still says so: `status` is the list's text ("Exited (3)
    /// 2 minutes ago"), whose exit code must be the remembered one, so a
    /// container restarted and exited again by hand is inspected afresh.
    pub(super) fn get(&self, id: &str, status: Option<&str>) -> Option<ContainerInfo> {
        let entries = self.entries.lock().ok()?;
        let info = entries.get(id)?;
        let ContainerState::Exited { exit_code, .. } = info.state else {
            return None;
        };
        let listed = status
            .and_then(|s| s.strip_prefix("Exited ("))
            .and_then(|s| s.split_once(')'))
            .and_then(|(code, _)| code.parse::<i64>().ok());
        (listed.is_some() && listed == exit_code).then(|| info.clone())
    }

    /// Remembers `info` if it describes an exited container, and forgets
    /// what was known of it otherwise (started again).
    pub(super) fn keep(&self, info: &ContainerInfo) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if !matches!(info.state, ContainerState::Exited { .. }) {
            entries.remove(&info.id);
            return;
        }
        if entries.len() < MAX_ENTRIES || entries.contains_key(&info.id) {
            entries.insert(info.id.clone(), info.clone());
        }
    }

    /// Forgets container `id` (removed, or started again).
    pub(super) fn forget(&self, id: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(id);
        }
    }

    /// Forgets every remembered container that a list filtered by `labels`
    /// should have returned but did not: it is gone from the engine.
    pub(super) fn prune(&self, labels: &BTreeMap<String, String>, listed: &HashSet<&str>) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        entries.retain(|id, info| {
            listed.contains(id.as_str())
                || !labels.iter().all(|(k, v)| info.labels.get(k) == Some(v))
        });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, node: &str, state: ContainerState) -> ContainerInfo {
        ContainerInfo {
            id: id.into(),
            name: id.into(),
            image: "busybox".into(),
            labels: BTreeMap::from([("node".to_string(), node.to_string())]),
            state,
            started_at: None,
            created_at: None,
            ip: None,
            ports: Vec::new(),
            termination_message: None,
        }
    }

    const EXITED_0: Option<&str> = Some("Exited (0) 5 seconds ago");

    fn exited() -> ContainerState {
        ContainerState::Exited {
            exit_code: Some(0),
            oom_killed: false,
            finished_at: None,
        }
    }

    #[test]
    fn keeps_only_exited_containers() {
        let c = ExitedCache::default();
        c.keep(&info("a", "n1", ContainerState::Running));
        c.keep(&info("b", "n1", ContainerState::Created));
        c.keep(&info("c", "n1", exited()));
        assert!(c.get("a", EXITED_0).is_none());
        assert!(c.get("b", EXITED_0).is_none());
        assert_eq!(c.get("c", EXITED_0).map(|i| i.state), Some(exited()));
        c.forget("c");
        assert!(c.get("c", EXITED_0).is_none());
        // Seen running again: what was known of it goes.
        c.keep(&info("c", "n1", exited()));
        c.keep(&info("c", "n1", ContainerState::Running));
        assert!(c.get("c", EXITED_0).is_none());
    }

    #[test]
    fn the_listed_exit_code_must_match() {
        let c = ExitedCache::default();
        c.keep(&info("c", "n1", exited()));
        assert!(c.get("c", Some("Exited (0) 3 seconds ago")).is_some());
        assert!(c.get("c", Some("Exited (137) 1 second ago")).is_none());
        assert!(c.get("c", Some("Up 2 seconds")).is_none());
        assert!(c.get("c", None).is_none());
    }

    #[test]
    fn prune_drops_only_what_the_filter_covers() {
        let c = ExitedCache::default();
        c.keep(&info("a", "n1", exited()));
        c.keep(&info("b", "n1", exited()));
        c.keep(&info("x", "n2", exited()));
        // A list of n1's containers that returned only `a`: `b` is gone;
        // `x` was not asked about and stays.
        let labels = BTreeMap::from([("node".to_string(), "n1".to_string())]);
        c.prune(&labels, &HashSet::from(["a"]));
        assert!(c.get("a", EXITED_0).is_some());
        assert!(c.get("b", EXITED_0).is_none());
        assert!(c.get("x", EXITED_0).is_some());
        // An unfiltered list covers everything.
        c.prune(&BTreeMap::new(), &HashSet::from(["x"]));
        assert_eq!(c.len(), 1);
        assert!(c.get("x", EXITED_0).is_some());
    }

    #[test]
    fn bounded() {
        let c = ExitedCache::default();
        for i in 0..MAX_ENTRIES + 10 {
            c.keep(&info(&format!("c{i}"), "n1", exited()));
        }
        assert_eq!(c.len(), MAX_ENTRIES);
        // One already kept is still refreshed at the cap.
        c.keep(&info("c0", "n2", exited()));
        assert_eq!(
            c.get("c0", EXITED_0)
                .and_then(|i| i.labels.get("node").cloned()),
            Some("n2".to_string())
        );
    }
}
