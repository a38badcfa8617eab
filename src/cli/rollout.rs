//! Deployments, DaemonSets and StatefulSets: scale and the rollout
//! commands (status, history, undo for all three; pause, resume for
//! Deployments). A Deployment's revisions are its ReplicaSets, a
//! DaemonSet's and a StatefulSet's their ControllerRevisions.

use anyhow::{anyhow, bail};
use serde_json::{Value, json};

use crate::resource::Kind;
use crate::resource::status::{DaemonSetStatus, DeploymentStatus, StatefulSetStatus};

use super::client::*;
use super::objects::*;
use super::{RolloutCmd, UsageError, emit};
use crate::columns::cells::*;

pub(super) const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
pub(super) const CHANGE_CAUSE_ANNOTATION: &str = "kubernetes.io/change-cause";
pub(super) const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// Read-modify-write attempts before a busy object's conflicts are reported.
pub(super) const WRITE_ATTEMPTS: usize = 5;
pub(super) const POLL: std::time::Duration = std::time::Duration::from_millis(500);

pub(super) fn ns_or_default(namespace: Option<String>) -> String {
    namespace.unwrap_or_else(|| "default".into())
}

/// The deployment named as `deployment NAME` or `deployment/NAME` (any
/// spelling of the kind `get` accepts).
pub(super) fn deployment_name(
    kind: &str,
    name: Option<&str>,
    verb: &str,
) -> anyhow::Result<String> {
    named(kind, name, verb, &[Kind::Deployment]).map(|(_, n)| n)
}

/// What `rollout status|history|undo` names: a deployment, a daemonset
/// or a statefulset.
fn rolled(kind: &str, name: Option<&str>, verb: &str) -> anyhow::Result<(Kind, String)> {
    named(
        kind,
        name,
        verb,
        &[Kind::Deployment, Kind::DaemonSet, Kind::StatefulSet],
    )
}

/// Whether the kind's revisions are ControllerRevisions (not ReplicaSets).
fn keeps_controller_revisions(kind: Kind) -> bool {
    matches!(kind, Kind::DaemonSet | Kind::StatefulSet)
}

/// How kubectl names the kind in rollout messages.
fn word(kind: Kind) -> &'static str {
    match kind {
        Kind::DaemonSet => "daemon set",
        Kind::StatefulSet => "statefulset",
        _ => "deployment",
    }
}

/// What `shoal scale` names: a deployment, a statefulset, or a replicaset
/// of the user's own (the API refuses one a deployment controls).
pub(super) fn scale_target(kind: &str, name: Option<&str>) -> anyhow::Result<(Kind, String)> {
    named(
        kind,
        name,
        "scale",
        &[Kind::Deployment, Kind::ReplicaSet, Kind::StatefulSet],
    )
}

/// An object of one of the `allowed` kinds named as `KIND NAME` or
/// `KIND/NAME`; usage errors mention the first allowed kind.
fn named(
    kind: &str,
    name: Option<&str>,
    verb: &str,
    allowed: &[Kind],
) -> anyhow::Result<(Kind, String)> {
    let first = allowed.first().map_or("deployment", |k| k.as_str());
    let required = || {
        UsageError(format!(
            "a {} name is required: shoal {verb} {} NAME",
            first.to_lowercase(),
            first.to_lowercase()
        ))
    };
    let (kind, name) = match (kind.split_once('/'), name) {
        (Some((k, n)), None) => (k, n),
        (Some(_), Some(_)) => {
            return Err(UsageError(format!(
                "there is no need to specify a name after {kind}: use KIND/NAME or KIND NAME"
            ))
            .into());
        }
        (None, Some(n)) => (kind, n),
        (None, None) => return Err(required().into()),
    };
    let plurals: Vec<&str> = allowed.iter().map(|k| k.plural()).collect();
    let works_on = match plurals.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => plurals.join(""),
    };
    match Kind::from_user(kind) {
        Some(k) if allowed.contains(&k) && !name.is_empty() => Ok((k, name.to_string())),
        Some(k) if allowed.contains(&k) => Err(required().into()),
        Some(k) => bail!("shoal {verb} works on {works_on}, not {}", k.plural()),
        None => bail!("unknown kind {kind:?}; shoal {verb} works on {works_on}"),
    }
}

/// Reads an object, lets `change` edit it and writes it back as a
/// compare-and-set on the resourceVersion read, rereading on conflict.
/// `change` returns whether it changed anything; nothing is written when it
/// did not. Returns whether it was written.
pub(super) async fn read_modify_write<F>(
    client: &Client,
    path: &str,
    mut change: F,
) -> anyhow::Result<bool>
where
    F: FnMut(&mut Value) -> anyhow::Result<bool>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut obj = client.send(reqwest::Method::GET, path, None).await?;
        if !change(&mut obj)? {
            return Ok(false);
        }
        // Without status the store keeps the stored one, so a controller's
        // status write cannot be undone by this client's stale copy.
        if let Some(m) = obj.as_object_mut() {
            m.remove("status");
        }
        let body = serde_json::to_vec(&obj)?;
        match client.send(reqwest::Method::PUT, path, Some(body)).await {
            Ok(_) => return Ok(true),
            Err(e) if http_status(&e) == Some(409) && attempt < WRITE_ATTEMPTS => {
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt as u64)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Sets `spec.<field>`; whether that changed it.
pub(super) fn set_spec_field(obj: &mut Value, field: &str, value: Value) -> anyhow::Result<bool> {
    let spec = obj
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| anyhow!("the stored object has no spec"))?;
    if spec.get(field) == Some(&value) {
        return Ok(false);
    }
    spec.insert(field.to_string(), value);
    Ok(true)
}

pub(super) async fn scale(
    client: &Client,
    kind: Kind,
    ns: &str,
    name: &str,
    replicas: u32,
) -> anyhow::Result<()> {
    let path = object_path(kind, ns, Some(name));
    read_modify_write(client, &path, |d| {
        set_spec_field(d, "replicas", json!(replicas))
    })
    .await?;
    outln!("{}.apps/{name} scaled", kind.as_str().to_lowercase());
    Ok(())
}

pub(super) async fn rollout(client: &Client, cmd: RolloutCmd) -> anyhow::Result<()> {
    match cmd {
        RolloutCmd::Status {
            kind,
            name,
            namespace,
            timeout,
        } => {
            let (kind, name) = rolled(&kind, name.as_deref(), "rollout status")?;
            rollout_status(client, kind, &ns_or_default(namespace), &name, timeout).await
        }
        RolloutCmd::History {
            kind,
            name,
            namespace,
        } => {
            let (kind, name) = rolled(&kind, name.as_deref(), "rollout history")?;
            rollout_history(client, kind, &ns_or_default(namespace), &name).await
        }
        RolloutCmd::Undo {
            kind,
            name,
            to_revision,
            namespace,
        } => {
            let (kind, name) = rolled(&kind, name.as_deref(), "rollout undo")?;
            rollout_undo(client, kind, &ns_or_default(namespace), &name, to_revision).await
        }
        RolloutCmd::Pause {
            kind,
            name,
            namespace,
        } => {
            let name = deployment_name(&kind, name.as_deref(), "rollout pause")?;
            set_paused(client, &ns_or_default(namespace), &name, true).await
        }
        RolloutCmd::Resume {
            kind,
            name,
            namespace,
        } => {
            let name = deployment_name(&kind, name.as_deref(), "rollout resume")?;
            set_paused(client, &ns_or_default(namespace), &name, false).await
        }
    }
}

pub(super) async fn set_paused(
    client: &Client,
    ns: &str,
    name: &str,
    pause: bool,
) -> anyhow::Result<()> {
    let path = object_path(Kind::Deployment, ns, Some(name));
    let written = read_modify_write(client, &path, |d| {
        let paused = s(d, &["spec", "paused"]).as_bool() == Some(true);
        if paused == pause {
            return Ok(false);
        }
        let spec = d
            .get_mut("spec")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| anyhow!("the stored deployment has no spec"))?;
        if pause {
            spec.insert("paused".into(), Value::Bool(true));
        } else {
            spec.remove("paused");
        }
        Ok(true)
    })
    .await?;
    // kubectl treats a no-op pause or resume as a mistake worth an error.
    match (written, pause) {
        (true, true) => outln!("deployment.apps/{name} paused"),
        (true, false) => outln!("deployment.apps/{name} resumed"),
        (false, true) => bail!("deployments.apps {name:?} is already paused"),
        (false, false) => bail!("deployments.apps {name:?} is not paused"),
    }
    Ok(())
}

/// Where a rollout stands, as `kubectl rollout status` reports it.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Progress {
    Waiting(String),
    Done,
    DeadlineExceeded,
}

pub(super) fn rollout_progress(d: &Value) -> Progress {
    let name = s(d, &["metadata", "name"]).as_str().unwrap_or("");
    let generation = s(d, &["metadata", "generation"]).as_u64().unwrap_or(1);
    let st: DeploymentStatus = status_of(d);
    let observed = st.observed_generation.unwrap_or(0);
    if observed < generation {
        return Progress::Waiting("Waiting for deployment spec update to be observed...".into());
    }
    let failed = st.condition("Progressing").is_some_and(|c| {
        c.status == "False" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    if failed {
        return Progress::DeadlineExceeded;
    }
    let want = s(d, &["spec", "replicas"]).as_u64().unwrap_or(1);
    let (replicas, updated, available) = (
        u64::from(st.replicas),
        u64::from(st.updated_replicas),
        u64::from(st.available_replicas),
    );
    let waiting = |what: String| {
        Progress::Waiting(format!(
            "Waiting for deployment {name:?} rollout to finish: {what}..."
        ))
    };
    if updated < want {
        waiting(format!(
            "{updated} out of {want} new replicas have been updated"
        ))
    } else if replicas > updated {
        waiting(format!(
            "{} old replicas are pending termination",
            replicas - updated
        ))
    } else if available < updated {
        waiting(format!(
            "{available} of {updated} updated replicas are available"
        ))
    } else if updated > want {
        // Scaling down: the extra pods are on their way out.
        waiting(format!(
            "{} old replicas are pending termination",
            updated - want
        ))
    } else {
        Progress::Done
    }
}

/// Where a DaemonSet's rollout stands, as `kubectl rollout status` reports it.
pub(super) fn daemonset_progress(d: &Value) -> Progress {
    let name = s(d, &["metadata", "name"]).as_str().unwrap_or("");
    let generation = s(d, &["metadata", "generation"]).as_u64().unwrap_or(1);
    let st: DaemonSetStatus = status_of(d);
    if st.observed_generation.unwrap_or(0) < generation {
        return Progress::Waiting("Waiting for daemon set spec update to be observed...".into());
    }
    let (want, updated, available) = (
        st.desired_number_scheduled,
        st.updated_number_scheduled,
        st.number_available,
    );
    if updated < want {
        Progress::Waiting(format!(
            "Waiting for daemon set {name:?} rollout to finish: {updated} out of {want} new pods have been updated..."
        ))
    } else if available < want {
        Progress::Waiting(format!(
            "Waiting for daemon set {name:?} rollout to finish: {available} of {want} updated pods are available..."
        ))
    } else {
        Progress::Done
    }
}

/// Where a StatefulSet's rollout stands, as `kubectl rollout status` reports it.
pub(super) fn statefulset_progress(d: &Value) -> Progress {
    let generation = s(d, &["metadata", "generation"]).as_u64().unwrap_or(1);
    let st: StatefulSetStatus = status_of(d);
    if st.observed_generation.unwrap_or(0) < generation {
        return Progress::Waiting("Waiting for statefulset spec update to be observed...".into());
    }
    let want = s(d, &["spec", "replicas"]).as_u64().unwrap_or(1);
    let ready = u64::from(st.ready_replicas);
    if ready < want {
        return Progress::Waiting(format!("Waiting for {} pods to be ready...", want - ready));
    }
    let partition = s(d, &["spec", "updateStrategy", "rollingUpdate", "partition"])
        .as_u64()
        .unwrap_or(0);
    let updated = u64::from(st.updated_replicas);
    if partition > 0 {
        let due = want.saturating_sub(partition);
        return if updated < due {
            Progress::Waiting(format!(
                "Waiting for partitioned roll out to finish: {updated} out of {due} new pods have been updated..."
            ))
        } else {
            Progress::Done
        };
    }
    if st.update_revision != st.current_revision {
        return Progress::Waiting(format!(
            "waiting for statefulset rolling update to complete {updated} pods at revision {}...",
            st.update_revision.unwrap_or_default()
        ));
    }
    Progress::Done
}

pub(super) async fn rollout_status(
    client: &Client,
    kind: Kind,
    ns: &str,
    name: &str,
    timeout: u64,
) -> anyhow::Result<()> {
    let path = object_path(kind, ns, Some(name));
    let what = word(kind);
    if keeps_controller_revisions(kind) {
        let d = client.send(reqwest::Method::GET, &path, None).await?;
        if s(&d, &["spec", "updateStrategy", "type"]).as_str() == Some("OnDelete") {
            bail!("rollout status is only available for RollingUpdate strategy type");
        }
    }
    let live = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let deadline = (timeout > 0)
        .then(|| tokio::time::Instant::now() + std::time::Duration::from_secs(timeout));
    let mut last = String::new();
    // Ends the live line so whatever is printed next starts on its own.
    let finish_line = |last: &str| {
        if live && !last.is_empty() {
            out!("\n");
        }
    };
    let mut first = true;
    loop {
        match client.send(reqwest::Method::GET, &path, None).await {
            Ok(d) => match match kind {
                Kind::DaemonSet => daemonset_progress(&d),
                Kind::StatefulSet => statefulset_progress(&d),
                _ => rollout_progress(&d),
            } {
                Progress::Done => {
                    finish_line(&last);
                    outln!("{what} {name:?} successfully rolled out");
                    return Ok(());
                }
                Progress::DeadlineExceeded => {
                    finish_line(&last);
                    bail!("deployment {name:?} exceeded its progress deadline");
                }
                Progress::Waiting(msg) => {
                    if msg != last {
                        if live {
                            out!("\r\x1b[2K{msg}");
                        } else {
                            outln!("{msg}");
                        }
                        last = msg;
                    }
                }
            },
            // A missing deployment or a refused request will not fix itself;
            // an election or a restarting node will.
            Err(e) if first || http_status(&e).is_some_and(|c| (400..500).contains(&c)) => {
                finish_line(&last);
                return Err(e.into());
            }
            Err(_) => {}
        }
        first = false;
        if let Some(dl) = deadline
            && tokio::time::Instant::now() + POLL > dl
        {
            finish_line(&last);
            bail!("timed out after {timeout}s waiting for {what} {name:?} to roll out");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The revision recorded in an object's annotation.
pub(super) fn revision_of(o: &Value) -> Option<u64> {
    s(o, &["metadata", "annotations", REVISION_ANNOTATION])
        .as_str()
        .and_then(|r| r.parse().ok())
}

/// The revisions of a deployment (its ReplicaSets) or a daemonset (its
/// ControllerRevisions), oldest first.
pub(super) async fn history(
    client: &Client,
    kind: Kind,
    ns: &str,
    owner: &Value,
) -> anyhow::Result<Vec<(u64, Value)>> {
    let uid = s(owner, &["metadata", "uid"])
        .as_str()
        .ok_or_else(|| anyhow!("the stored {} has no uid", word(kind)))?;
    let revisions = if keeps_controller_revisions(kind) {
        Kind::ControllerRevision
    } else {
        Kind::ReplicaSet
    };
    let list = client
        .send(
            reqwest::Method::GET,
            &object_path(revisions, ns, None),
            None,
        )
        .await?;
    let mut sets: Vec<(u64, Value)> = s(&list, &["items"])
        .as_array()
        .into_iter()
        .flatten()
        .filter(|rs| {
            s(rs, &["metadata", "ownerReferences"])
                .as_array()
                .into_iter()
                .flatten()
                .any(|o| o.get("uid").and_then(Value::as_str) == Some(uid))
        })
        .filter_map(|rs| {
            let rev = match revisions {
                Kind::ControllerRevision => s(rs, &["revision"]).as_u64(),
                _ => revision_of(rs),
            };
            Some((rev?, rs.clone()))
        })
        .collect();
    sets.sort_by_key(|(r, _)| *r);
    Ok(sets)
}

pub(super) async fn rollout_history(
    client: &Client,
    kind: Kind,
    ns: &str,
    name: &str,
) -> anyhow::Result<()> {
    let d = client
        .send(
            reqwest::Method::GET,
            &object_path(kind, ns, Some(name)),
            None,
        )
        .await?;
    let sets = history(client, kind, ns, &d).await?;
    if sets.is_empty() {
        outln!("No rollout history found.");
        return Ok(());
    }
    let mut rows = vec![vec!["REVISION".to_string(), "CHANGE-CAUSE".into()]];
    for (rev, rs) in &sets {
        rows.push(vec![
            rev.to_string(),
            s(rs, &["metadata", "annotations", CHANGE_CAUSE_ANNOTATION])
                .as_str()
                .unwrap_or("<none>")
                .to_string(),
        ]);
    }
    outln!("{}/{name}", display_kind(kind.as_str()));
    out!("{}", render_rows(&rows));
    Ok(())
}

/// The revision `rollout undo` goes back to: `to` when given, else the
/// newest one older than `current` (the deployment's own revision, or the
/// newest when it has none). `subject` names the object in errors
/// (`deployment "web"`).
pub(super) fn rollback_target<'a>(
    history: &'a [(u64, Value)],
    current: Option<u64>,
    to: Option<u64>,
    subject: &str,
) -> anyhow::Result<&'a (u64, Value)> {
    match to.filter(|r| *r > 0) {
        Some(r) => history
            .iter()
            .find(|(rev, _)| *rev == r)
            .ok_or_else(|| anyhow!("unable to find specified revision {r} in history")),
        None => {
            let newest = history
                .iter()
                .map(|(r, _)| *r)
                .max()
                .ok_or_else(|| anyhow!("no rollout history found for {subject}"))?;
            let current = current.unwrap_or(newest);
            history
                .iter()
                .filter(|(r, _)| *r < current)
                .max_by_key(|(r, _)| *r)
                .ok_or_else(|| anyhow!("{subject} has no previous revision to roll back to"))
        }
    }
}

/// A ReplicaSet's pod template as its deployment would hold it: without the
/// label and the configuration hash the controller adds.
pub(super) fn template_without_hash(rs: &Value) -> anyhow::Result<Value> {
    let mut t = s(rs, &["spec", "template"]).clone();
    if !t.is_object() {
        bail!("ReplicaSet has no pod template");
    }
    let Some(meta) = t.get_mut("metadata").and_then(Value::as_object_mut) else {
        return Ok(t);
    };
    if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
        labels.remove(TEMPLATE_HASH_LABEL);
    }
    let mut no_annotations = false;
    if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
        a.remove(crate::controller::confighash::CONFIG_HASH);
        no_annotations = a.is_empty();
    }
    // The Deployment's own template had none before the controller stamped it.
    if no_annotations {
        meta.remove("annotations");
    }
    Ok(t)
}

/// The revision a daemonset or statefulset runs now: the one holding its template.
fn daemonset_revision(d: &Value, history: &[(u64, Value)]) -> Option<u64> {
    let template = s(d, &["spec", "template"]);
    history
        .iter()
        .find(|(_, cr)| s(cr, &["data", "spec", "template"]) == template)
        .map(|(r, _)| *r)
}

pub(super) async fn rollout_undo(
    client: &Client,
    kind: Kind,
    ns: &str,
    name: &str,
    to: Option<u64>,
) -> anyhow::Result<()> {
    let path = object_path(kind, ns, Some(name));
    let shown = display_kind(kind.as_str());
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut d = client.send(reqwest::Method::GET, &path, None).await?;
        if s(&d, &["spec", "paused"]).as_bool() == Some(true) {
            bail!(
                "you cannot roll back a paused deployment; resume it first with 'shoal rollout resume deployment/{name}' and try again"
            );
        }
        let history = history(client, kind, ns, &d).await?;
        let current = match kind {
            Kind::DaemonSet | Kind::StatefulSet => daemonset_revision(&d, &history),
            _ => revision_of(&d),
        };
        let subject = format!("{} {name:?}", word(kind));
        let (rev, rs) = rollback_target(&history, current, to, &subject)?;
        let template = match kind {
            // Kept as the daemonset held it, nothing added.
            Kind::DaemonSet | Kind::StatefulSet => s(rs, &["data", "spec", "template"]).clone(),
            _ => template_without_hash(rs)?,
        };
        if s(&d, &["spec", "template"]) == &template {
            outln!(
                "{shown}/{name} skipped rollback (current template already matches revision {rev})"
            );
            if s(rs, &["spec", "template", "metadata", "annotations"])
                .get(crate::controller::confighash::CONFIG_HASH)
                .is_some()
            {
                outln!(
                    "revision {rev} differs at most in the ConfigMaps and Secrets its pods read: \
                     pods read them as they are now, so change them back to go back (their old \
                     revision's ReplicaSet is then reused)"
                );
            }
            return Ok(());
        }
        set_spec_field(&mut d, "template", template)?;
        // The revived revision keeps its own change cause, as with kubectl.
        let cause = s(rs, &["metadata", "annotations", CHANGE_CAUSE_ANNOTATION]).clone();
        let meta = d
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| anyhow!("the stored {} has no metadata", word(kind)))?;
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .ok_or_else(|| anyhow!("the stored {}'s annotations are not a map", word(kind)))?;
        match cause {
            Value::String(c) => {
                annotations.insert(CHANGE_CAUSE_ANNOTATION.into(), Value::String(c));
            }
            _ => {
                annotations.remove(CHANGE_CAUSE_ANNOTATION);
            }
        }
        if let Some(m) = d.as_object_mut() {
            m.remove("status");
        }
        let body = serde_json::to_vec(&d)?;
        match client.send(reqwest::Method::PUT, &path, Some(body)).await {
            Ok(_) => {
                outln!("{shown}/{name} rolled back");
                return Ok(());
            }
            Err(e) if http_status(&e) == Some(409) && attempt < WRITE_ATTEMPTS => {
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt as u64)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
