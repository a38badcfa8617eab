//! `shoal taint node NAME KEY[=VALUE]:EFFECT ... | KEY[:EFFECT]- ...`, as
//! kubectl: adds taints to a node's `spec.taints` (refusing to change an
//! existing one's value without `--overwrite`) or removes them.

use anyhow::{Context, anyhow, bail};

use super::client::*;
use super::emit;
use super::nodes::update_node_spec;
use crate::resource::time::now_rfc3339;
use crate::resource::types::{Taint, TaintEffect};

/// One argument of `shoal taint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TaintChange {
    /// `KEY[=VALUE]:EFFECT`.
    Add(Taint),
    /// `KEY[:EFFECT]-`: every taint of the key, or of the key and effect.
    Remove {
        key: String,
        effect: Option<TaintEffect>,
    },
}

fn effect(s: &str) -> anyhow::Result<TaintEffect> {
    match s {
        "NoSchedule" => Ok(TaintEffect::NoSchedule),
        "PreferNoSchedule" => Ok(TaintEffect::PreferNoSchedule),
        "NoExecute" => Ok(TaintEffect::NoExecute),
        other => bail!(
            "unknown taint effect {other:?}: expected NoSchedule, PreferNoSchedule or NoExecute"
        ),
    }
}

/// Parses `KEY[=VALUE]:EFFECT` or `KEY[:EFFECT]-`.
pub(super) fn parse_change(arg: &str) -> anyhow::Result<TaintChange> {
    if let Some(rest) = arg.strip_suffix('-') {
        let (key, eff) = match rest.split_once(':') {
            Some((k, e)) => (k, Some(effect(e)?)),
            None => (rest, None),
        };
        let key = key.split_once('=').map_or(key, |(k, _)| k);
        if key.is_empty() {
            bail!("{arg:?}: a taint to remove needs a key (KEY[:EFFECT]-)");
        }
        return Ok(TaintChange::Remove {
            key: key.to_string(),
            effect: eff,
        });
    }
    let (kv, eff) = arg.rsplit_once(':').ok_or_else(|| {
        anyhow!("{arg:?}: expected KEY[=VALUE]:EFFECT, or KEY[:EFFECT]- to remove")
    })?;
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v.to_string()).filter(|v| !v.is_empty())),
        None => (kv, None),
    };
    if key.is_empty() {
        bail!("{arg:?}: a taint needs a key");
    }
    Ok(TaintChange::Add(Taint {
        key: key.to_string(),
        value,
        effect: effect(eff)?,
        time_added: None,
    }))
}

/// Applies the changes to a node's taints; `Err` names what may not be done.
pub(super) fn apply_changes(
    taints: &mut Vec<Taint>,
    changes: &[TaintChange],
    overwrite: bool,
    now: &str,
) -> anyhow::Result<()> {
    for c in changes {
        match c {
            TaintChange::Add(t) => {
                match taints
                    .iter_mut()
                    .find(|have| have.key == t.key && have.effect == t.effect)
                {
                    Some(have) if have.value == t.value => {}
                    Some(_) if !overwrite => bail!(
                        "node already has a taint {}:{} with another value: use --overwrite to change it",
                        t.key,
                        t.effect.as_str()
                    ),
                    Some(have) => have.value = t.value.clone(),
                    None => {
                        let mut t = t.clone();
                        // tolerationSeconds count from here.
                        if t.effect == TaintEffect::NoExecute {
                            t.time_added = Some(now.to_string());
                        }
                        taints.push(t);
                    }
                }
            }
            TaintChange::Remove { key, effect } => {
                let before = taints.len();
                taints.retain(|t| !(t.key == *key && effect.is_none_or(|e| e == t.effect)));
                if taints.len() == before {
                    bail!("taint {key:?} not found");
                }
            }
        }
    }
    Ok(())
}

/// `shoal taint node NAME CHANGE...`.
pub(super) async fn taint(
    client: &Client,
    name: &str,
    args: &[String],
    overwrite: bool,
) -> anyhow::Result<()> {
    let changes = args
        .iter()
        .map(|a| parse_change(a))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if changes.is_empty() {
        bail!("no taint given: KEY[=VALUE]:EFFECT to add, KEY[:EFFECT]- to remove");
    }
    let now = now_rfc3339();
    update_node_spec(client, name, |spec| {
        let mut taints: Vec<Taint> = match spec.get("taints") {
            Some(v) => serde_json::from_value(v.clone()).context("the node's taints")?,
            None => Vec::new(),
        };
        apply_changes(&mut taints, &changes, overwrite, &now)?;
        if taints.is_empty() {
            spec.remove("taints");
        } else {
            spec.insert("taints".into(), serde_json::to_value(&taints)?);
        }
        Ok(true)
    })
    .await?;
    outln!("node/{name} tainted");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_parse_and_apply_as_kubectl() {
        let add = parse_change("dedicated=db:NoSchedule").unwrap();
        assert_eq!(
            add,
            TaintChange::Add(Taint {
                key: "dedicated".into(),
                value: Some("db".into()),
                effect: TaintEffect::NoSchedule,
                time_added: None,
            })
        );
        assert!(parse_change("k:Sometimes").is_err());
        assert!(parse_change("novalue").is_err());
        assert_eq!(
            parse_change("k:NoExecute-").unwrap(),
            TaintChange::Remove {
                key: "k".into(),
                effect: Some(TaintEffect::NoExecute)
            }
        );
        let mut taints = Vec::new();
        let evict = parse_change("gone:NoExecute").unwrap();
        apply_changes(&mut taints, &[add.clone(), evict], false, "T").unwrap();
        assert_eq!(taints.len(), 2);
        assert_eq!(taints[1].time_added.as_deref(), Some("T"));
        // The same again is no change; another value needs --overwrite.
        apply_changes(&mut taints, std::slice::from_ref(&add), false, "T").unwrap();
        let other = parse_change("dedicated=web:NoSchedule").unwrap();
        let e = apply_changes(&mut taints, std::slice::from_ref(&other), false, "T").unwrap_err();
        assert!(e.to_string().contains("--overwrite"), "{e}");
        apply_changes(&mut taints, &[other], true, "T").unwrap();
        assert_eq!(taints[0].value.as_deref(), Some("web"));
        // Removing by key takes every effect; an unknown key is an error.
        apply_changes(
            &mut taints,
            &[parse_change("dedicated-").unwrap()],
            false,
            "T",
        )
        .unwrap();
        assert_eq!(taints.len(), 1);
        assert!(apply_changes(&mut taints, &[parse_change("nope-").unwrap()], false, "T").is_err());
    }
}
