//! Checks of a container's `resources`: cpu, memory, ephemeral-storage and
//! extended resources (`example.com/dongle`) with Kubernetes' rules.

use super::*;
use crate::resource::extended::{self, EPHEMERAL_STORAGE};
use crate::resource::types::ResourceRequirements;

/// What shoal schedules, for the message refusing anything else.
const SUPPORTED: &str = "shoal supports cpu, memory, ephemeral-storage and extended resources named <domain>/<name> such as example.com/dongle";

/// Checks `resources` of one container; `rp` is its path.
pub(super) fn check_resources(rp: &str, r: &ResourceRequirements) -> Res {
    for (section, map) in [("requests", &r.requests), ("limits", &r.limits)] {
        for (name, q) in map {
            let qp = join(&format!("{rp}.{section}"), name);
            let parsed = match name.as_str() {
                "cpu" => parse_cpu_millis(q.as_str())
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                "memory" | EPHEMERAL_STORAGE => parse_memory_bytes(q.as_str())
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                n if n.starts_with("hugepages-") => {
                    return fail(qp, "hugepages are not supported by shoal");
                }
                n if n.contains('/') => extended::check_name(n)
                    .and_then(|()| extended::parse_count(q.as_str()))
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                _ => return fail(qp, format!("resource not supported: {SUPPORTED}")),
            };
            parsed.or_else(|e| fail(&qp, e))?;
        }
    }
    for name in ["cpu", "memory", EPHEMERAL_STORAGE] {
        if let (Some(req), Some(lim)) = (r.requests.get(name), r.limits.get(name)) {
            let parse = if name == "cpu" {
                parse_cpu_millis
            } else {
                parse_memory_bytes
            };
            if parse(req.as_str()).ok() > parse(lim.as_str()).ok() {
                return fail(
                    join(&format!("{rp}.requests"), name),
                    format!("request {req} must not exceed the limit {lim}"),
                );
            }
        }
    }
    // Extended resources cannot be overcommitted: a request needs the same
    // limit (a limit alone stands for both), as Kubernetes requires.
    for (name, req) in r.requests.iter().filter(|(n, _)| n.contains('/')) {
        let qp = join(&format!("{rp}.requests"), name);
        let Some(lim) = r.limits.get(name) else {
            return fail(
                qp,
                format!(
                    "{name} is an extended resource: set its limit too (equal to the request), as it cannot be overcommitted"
                ),
            );
        };
        if extended::parse_count(req.as_str()).ok() != extended::parse_count(lim.as_str()).ok() {
            return fail(
                qp,
                format!("{req} must be equal to the {name} limit of {lim}"),
            );
        }
    }
    Ok(())
}
