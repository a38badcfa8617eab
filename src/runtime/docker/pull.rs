//! Pulling an image, with a pod's registry credentials when it has some.

use bollard::auth::DockerCredentials;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures::StreamExt;

use super::{DockerRuntime, other_err, secs_text, status_of, with_default_tag};
use crate::runtime::{RegistryAuth, RuntimeError};

impl DockerRuntime {
    /// Uses the image if present (unless `always_pull`), else pulls it,
    /// with the registry credentials given.
    pub(super) async fn pull_image(
        &self,
        image: &str,
        always_pull: bool,
        auth: Option<&RegistryAuth>,
    ) -> Result<(), RuntimeError> {
        match self.docker.inspect_image(image).await {
            Ok(_) if !always_pull => return Ok(()),
            Ok(_) => {}
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => return Err(other_err("inspect image", image, e)),
        }
        let reference = with_default_tag(image);
        let opts = CreateImageOptionsBuilder::default()
            .from_image(&reference)
            .build();
        let pull = async {
            let creds = auth.map(credentials);
            let mut progress = self.docker.create_image(Some(opts), None, creds);
            while let Some(item) = progress.next().await {
                item?;
            }
            Ok::<(), DockerError>(())
        };
        let pull_failed = |reason: String| RuntimeError::ImagePull {
            image: image.to_string(),
            reason,
        };
        match tokio::time::timeout(self.pull_timeout, pull).await {
            Err(_) => {
                return Err(pull_failed(format!(
                    "pull did not finish within {} s",
                    secs_text(self.pull_timeout)
                )));
            }
            Ok(Err(e)) => {
                let reason = match e {
                    DockerError::DockerResponseServerError { message, .. } => message,
                    DockerError::DockerStreamError { error } => error,
                    other => other.to_string(),
                };
                return Err(pull_failed(format!("pull failed: {reason}")));
            }
            Ok(Ok(())) => {}
        }
        // A pull stream can end without an error and without an image (a
        // dropped connection); only the engine's own word counts.
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Err(pull_failed(
                "pull ended but the image is still not present".into(),
            )),
            Err(e) => Err(other_err("inspect image", image, e)),
        }
    }
}

/// The engine's form of a registry login.
fn credentials(a: &RegistryAuth) -> DockerCredentials {
    DockerCredentials {
        username: a.username.clone(),
        password: a.password.clone(),
        identitytoken: a.identity_token.clone(),
        serveraddress: Some(a.server.clone()),
        ..Default::default()
    }
}
