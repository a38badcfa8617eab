//! A container's termination message file: made and mounted by the agent
//! before each instance starts, read by the runtime once it exits.

use std::os::unix::fs::PermissionsExt;

use super::Ctx;
use crate::resource::types::Container;

/// On Docker, a new empty file for this instance's termination
/// message, bind-mounted at `terminationMessagePath` and named in a
/// label, so the runtime reads it once the container exits. It lives
/// with the pod's volumes and goes with them. A host process has no
/// mount namespace to put it in: it gets none.
pub(super) fn termination_log(
    ctx: &Ctx,
    uid: &str,
    c: &Container,
    restarts: u32,
    cspec: &mut crate::runtime::ContainerSpec,
) -> Result<(), String> {
    if ctx.runtime.name() == crate::runtime::RuntimeKind::Process.as_str() {
        return Ok(());
    }
    let dir = ctx.pod_volumes_dir(uid).join(".termination");
    let file = dir.join(format!("{}-{restarts}", c.name));
    let made = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&file, b""))
        // Any user the container runs as may write it, as the kubelet's.
        .and_then(|()| std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)));
    if let Err(e) = made {
        return Err(format!(
            "cannot make the termination message file {}: {e}",
            file.display()
        ));
    }
    // The instance before the last is gone and its message reported
    // (the last's is still read for `lastState`): a crash loop keeps
    // two files, not one per restart.
    if let Some(older) = restarts.checked_sub(2) {
        let _ = std::fs::remove_file(dir.join(format!("{}-{older}", c.name)));
    }
    let host_path = file.to_string_lossy().into_owned();
    cspec.labels.insert(
        crate::runtime::TERMINATION_LOG_LABEL.to_string(),
        host_path.clone(),
    );
    if c.termination_message_policy
        == Some(crate::resource::types::TerminationMessagePolicy::FallbackToLogsOnError)
    {
        cspec.labels.insert(
            crate::runtime::TERMINATION_FALLBACK_LABEL.to_string(),
            "true".to_string(),
        );
    }
    cspec.mounts.push(crate::runtime::Mount {
        host_path,
        volume: None,
        container_path: c.termination_message_path.clone().unwrap_or_else(|| {
            crate::resource::types::DEFAULT_TERMINATION_MESSAGE_PATH.to_string()
        }),
        read_only: false,
    });
    Ok(())
}
