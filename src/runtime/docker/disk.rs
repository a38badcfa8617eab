//! Inspecting a container: plainly, or with its writable layer size, which
//! the engine computes only when asked (`?size=true`: a walk of the layer,
//! so the agent asks on a slow period only).

use bollard::query_parameters::InspectContainerOptionsBuilder;

use super::{ContainerInspectResponse, DockerError, DockerRuntime, map_err};
use crate::runtime::RuntimeError;

impl DockerRuntime {
    /// Inspects one container, keeping bollard's error so callers can decide
    /// what a 404 means to them.
    pub(super) async fn inspect_raw(
        &self,
        id: &str,
    ) -> Result<ContainerInspectResponse, DockerError> {
        self.docker.inspect_container(id, None).await
    }

    /// `SizeRw`: bytes the container wrote over its image.
    pub(super) async fn writable_layer_bytes(&self, id: &str) -> Result<Option<u64>, RuntimeError> {
        let opts = InspectContainerOptionsBuilder::new().size(true).build();
        let c = self
            .docker
            .inspect_container(id, Some(opts))
            .await
            .map_err(|e| map_err("inspect container size", id, e))?;
        Ok(c.size_rw.map(|b| u64::try_from(b).unwrap_or(0)))
    }
}
