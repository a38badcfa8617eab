//! Kubernetes' Priority admission: a new pod's `priorityClassName` (or,
//! when it names none, the class marked `globalDefault`) becomes its
//! `spec.priority` and `spec.preemptionPolicy`, so the scheduler reads a
//! number and never the classes, and a class changed later does not move
//! pods already created.

use std::collections::BTreeMap;

use crate::resource::Object;
use crate::resource::types::{
    Body, PodSpec, PreemptionPolicy, PriorityClassBody, SYSTEM_PRIORITY_CLASSES,
};

/// A class as admission needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Class {
    /// The priority its pods take.
    pub value: i32,
    /// Whether its pods may preempt lower priorities.
    pub preemption: PreemptionPolicy,
}

/// The cluster's PriorityClasses, the built-in `system-` ones included.
#[derive(Debug, Clone, Default)]
pub struct PriorityClasses {
    classes: BTreeMap<String, Class>,
    /// The class of pods that name none.
    default: Option<String>,
}

impl PriorityClasses {
    /// The classes among `objects`, undecodable ones left out. Of several
    /// marked `globalDefault` (two writes racing), the one with the lowest
    /// value wins, as Kubernetes' admission picks.
    pub fn of(objects: &[Object]) -> PriorityClasses {
        let mut out = PriorityClasses::default();
        let mut default: Option<(i32, String)> = None;
        for o in objects {
            let Ok(b) = PriorityClassBody::from_object(o) else {
                continue;
            };
            let name = o.metadata.name.clone();
            if b.global_default && default.as_ref().is_none_or(|(v, _)| b.value < *v) {
                default = Some((b.value, name.clone()));
            }
            out.classes.insert(
                name,
                Class {
                    value: b.value,
                    preemption: b.preemption_policy.unwrap_or_default(),
                },
            );
        }
        out.default = default.map(|(_, n)| n);
        out
    }

    /// The class named `name`, built-in or stored.
    pub fn get(&self, name: &str) -> Option<Class> {
        if let Some((_, value)) = SYSTEM_PRIORITY_CLASSES.iter().find(|(n, _)| *n == name) {
            return Some(Class {
                value: *value,
                preemption: PreemptionPolicy::PreemptLowerPriority,
            });
        }
        self.classes.get(name).copied()
    }

    /// The class marked `globalDefault`, if any.
    pub fn global_default(&self) -> Option<&str> {
        self.default.as_deref()
    }

    /// Fills a new pod's priority from its class. A pod that names no
    /// class and finds no default keeps both fields unset, which the
    /// scheduler reads as priority 0 that may preempt. A value the pod
    /// gives itself must be the class's (Kubernetes' wording).
    pub fn resolve(&self, spec: &mut PodSpec) -> Result<(), String> {
        let named = spec
            .priority_class_name
            .clone()
            .or_else(|| self.default.clone());
        let Some(name) = named else {
            return match spec.priority {
                Some(p) if p != 0 => Err(format!(
                    "the integer value of priority ({p}) must not be provided in pod spec; \
                     priority admission controller computed 0 from the given PriorityClass name"
                )),
                _ => Ok(()),
            };
        };
        let class = self
            .get(&name)
            .ok_or_else(|| format!("no PriorityClass with name {name} was found"))?;
        if let Some(p) = spec.priority
            && p != class.value
        {
            return Err(format!(
                "the integer value of priority ({p}) must not be provided in pod spec; \
                 priority admission controller computed {} from the given PriorityClass name",
                class.value
            ));
        }
        if let Some(p) = spec.preemption_policy
            && p != class.preemption
        {
            return Err(format!(
                "the string value of PreemptionPolicy ({p:?}) must not be provided in pod \
                 spec; priority admission controller computed {:?} from the given \
                 PriorityClass name",
                class.preemption
            ));
        }
        spec.priority_class_name = Some(name);
        spec.priority = Some(class.value);
        spec.preemption_policy = Some(class.preemption);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::types::Container;

    fn class(name: &str, value: i32, default: bool, never: bool) -> Object {
        let mut o = serde_json::json!({
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": { "name": name },
            "value": value,
            "globalDefault": default,
        });
        if never {
            o["preemptionPolicy"] = "Never".into();
        }
        serde_json::from_value(o).expect("class")
    }

    fn pod(class: Option<&str>) -> PodSpec {
        PodSpec {
            containers: vec![Container::default()],
            priority_class_name: class.map(str::to_string),
            ..PodSpec::default()
        }
    }

    #[test]
    fn a_named_class_sets_value_and_policy() {
        let c = PriorityClasses::of(&[class("high", 1000, false, true)]);
        let mut p = pod(Some("high"));
        c.resolve(&mut p).expect("resolves");
        assert_eq!(p.priority, Some(1000));
        assert_eq!(p.preemption_policy, Some(PreemptionPolicy::Never));
        // Resolving again (a re-applied pod) changes nothing and passes.
        let again = p.clone();
        c.resolve(&mut p).expect("idempotent");
        assert_eq!(p, again);
    }

    #[test]
    fn unknown_classes_and_foreign_values_are_refused() {
        let c = PriorityClasses::of(&[class("high", 1000, false, false)]);
        let e = c.resolve(&mut pod(Some("nope"))).expect_err("unknown");
        assert_eq!(e, "no PriorityClass with name nope was found");
        let mut p = pod(Some("high"));
        p.priority = Some(5);
        let e = c.resolve(&mut p).expect_err("wrong value");
        assert!(e.contains("priority (5) must not be provided"), "{e}");
        assert!(e.contains("computed 1000"), "{e}");
        let mut p = pod(None);
        p.priority = Some(7);
        assert!(c.resolve(&mut p).is_err(), "a value without a class");
    }

    #[test]
    fn the_global_default_names_pods_without_a_class() {
        let c = PriorityClasses::of(&[class("a", 10, true, false), class("b", 5, true, false)]);
        assert_eq!(
            c.global_default(),
            Some("b"),
            "lowest value of two defaults"
        );
        let mut p = pod(None);
        c.resolve(&mut p).expect("resolves");
        assert_eq!(p.priority_class_name.as_deref(), Some("b"));
        assert_eq!(p.priority, Some(5));
        let none = PriorityClasses::default();
        let mut p = pod(None);
        none.resolve(&mut p).expect("no classes at all");
        assert_eq!(p, pod(None), "left unset: priority 0");
    }

    #[test]
    fn system_classes_are_built_in() {
        let c = PriorityClasses::default();
        let mut p = pod(Some("system-node-critical"));
        c.resolve(&mut p).expect("built in");
        assert_eq!(p.priority, Some(2_000_001_000));
    }
}
