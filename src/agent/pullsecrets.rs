//! A pod's `imagePullSecrets`: the registry login for an image, from the
//! `kubernetes.io/dockerconfigjson` (or legacy `kubernetes.io/dockercfg`)
//! Secrets the pod names, passed to the engine's pull.

use serde_json::{Map, Value};
use tracing::warn;

use super::Ctx;
use crate::resource::types::{PodSpec, decode_base64};
use crate::resource::{Kind, Object, ObjectKey};
use crate::runtime::{RegistryAuth, RuntimeError};

/// The Secret types that hold registry logins, with their data key.
const DOCKER_CONFIG_JSON: (&str, &str) = ("kubernetes.io/dockerconfigjson", ".dockerconfigjson");
const DOCKER_CFG: (&str, &str) = ("kubernetes.io/dockercfg", ".dockercfg");

/// Makes `image` available, pulling it with the first login among the
/// pod's pull Secrets that is for its registry. A Secret that does not
/// exist is passed over, as the kubelet does, and named if the pull fails.
pub(super) async fn ensure_image(
    ctx: &Ctx,
    spec: &PodSpec,
    namespace: &str,
    image: &str,
    always: bool,
) -> Result<(), RuntimeError> {
    if spec.image_pull_secrets.is_empty() {
        return ctx.runtime.ensure_image(image, always).await;
    }
    let mut secrets = Vec::new();
    for r in &spec.image_pull_secrets {
        let key = ObjectKey::new(Kind::Secret, namespace, &r.name);
        let found = ctx.store.get(&key).map_err(|e| RuntimeError::ImagePull {
            image: image.to_string(),
            reason: format!("cannot read imagePullSecret {:?}: {e}", r.name),
        })?;
        secrets.push((r.name.clone(), found));
    }
    let missing: Vec<&str> = secrets
        .iter()
        .filter(|(_, s)| s.is_none())
        .map(|(n, _)| n.as_str())
        .collect();
    let auth = registry_auth(image, &secrets).map_err(|reason| RuntimeError::ImagePull {
        image: image.to_string(),
        reason,
    })?;
    if !missing.is_empty() {
        warn!(
            namespace,
            image,
            "imagePullSecrets not found: {}",
            missing.join(", ")
        );
    }
    match ctx
        .runtime
        .ensure_image_with(image, always, auth.as_ref())
        .await
    {
        Err(RuntimeError::ImagePull { image, reason }) if !missing.is_empty() => {
            Err(RuntimeError::ImagePull {
                image,
                reason: format!(
                    "{reason} (imagePullSecrets not found: {})",
                    missing.join(", ")
                ),
            })
        }
        other => other,
    }
}

/// The registry an image reference pulls from, as Docker reads it: the
/// first path component when it looks like a host (a dot, a port or
/// `localhost`), else Docker Hub.
pub fn registry_of(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => {
            normal_registry(first)
        }
        _ => "docker.io".into(),
    }
}

/// A registry as written in a Docker config (`https://index.docker.io/v1/`)
/// reduced to the host and port an image names.
fn normal_registry(key: &str) -> String {
    let host = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = host
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".into(),
        _ => host,
    }
}

/// The login for `image`'s registry among the Secrets (name, object; `None`
/// when missing), first match first. A Secret of another type, or one
/// whose config does not parse, is an error naming it: a pod that names
/// credentials must not silently pull without them.
pub fn registry_auth(
    image: &str,
    secrets: &[(String, Option<Object>)],
) -> Result<Option<RegistryAuth>, String> {
    let want = registry_of(image);
    for (name, secret) in secrets {
        let Some(secret) = secret else { continue };
        let auths = logins(name, secret)?;
        for (server, entry) in &auths {
            if normal_registry(server) != want {
                continue;
            }
            return login(name, server, entry, &want).map(Some);
        }
    }
    Ok(None)
}

/// The `auths` map of a registry Secret.
fn logins(name: &str, secret: &Object) -> Result<Map<String, Value>, String> {
    let ty = secret
        .body
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("");
    let data_key = [DOCKER_CONFIG_JSON, DOCKER_CFG]
        .into_iter()
        .find(|(t, _)| *t == ty)
        .map(|(_, k)| k)
        .ok_or_else(|| {
            format!(
                "imagePullSecret {name:?} is of type {ty:?}, not {} or {}",
                DOCKER_CONFIG_JSON.0, DOCKER_CFG.0
            )
        })?;
    let bad = |why: String| format!("imagePullSecret {name:?}: {why}");
    let encoded = secret
        .body
        .get("data")
        .and_then(|d| d.get(data_key))
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("no {data_key} key")))?;
    let raw = decode_base64(encoded).map_err(|e| bad(format!("{data_key}: {e}")))?;
    let config: Value =
        serde_json::from_slice(&raw).map_err(|e| bad(format!("{data_key} is not JSON: {e}")))?;
    // dockerconfigjson wraps the registries in `auths`; dockercfg is the map itself.
    let map = if data_key == DOCKER_CONFIG_JSON.1 {
        config.get("auths")
    } else {
        Some(&config)
    };
    map.and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| bad(format!("{data_key} has no registry map")))
}

/// One registry's entry: `username`/`password`, or `auth` (base64 of
/// `user:password`), or an `identitytoken`.
fn login(name: &str, server: &str, entry: &Value, registry: &str) -> Result<RegistryAuth, String> {
    let field = |k: &str| {
        entry
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let mut auth = RegistryAuth {
        server: registry.to_string(),
        username: field("username"),
        password: field("password"),
        identity_token: field("identitytoken"),
    };
    if auth.username.is_none()
        && let Some(encoded) = field("auth")
    {
        let bad = || {
            format!(
                "imagePullSecret {name:?}: the auth of {server:?} is not base64 of user:password"
            )
        };
        let raw = decode_base64(&encoded).map_err(|_| bad())?;
        let text = String::from_utf8(raw).map_err(|_| bad())?;
        let (user, password) = text.split_once(':').ok_or_else(bad)?;
        auth.username = Some(user.to_string());
        auth.password = Some(password.to_string());
    }
    if auth.username.is_none() && auth.identity_token.is_none() {
        return Err(format!(
            "imagePullSecret {name:?}: the entry for {server:?} has no username, auth or identitytoken"
        ));
    }
    Ok(auth)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::types::encode_base64;
    use serde_json::json;

    fn secret(ty: &str, key: &str, config: &Value) -> Option<Object> {
        let data = encode_base64(config.to_string().as_bytes());
        Some(
            serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "s", "namespace": "default"},
                "type": ty, "data": {key: data},
            }))
            .expect("secret"),
        )
    }

    fn config_json(auths: Value) -> Option<Object> {
        secret(
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            &json!({ "auths": auths }),
        )
    }

    #[test]
    fn the_registry_of_an_image() {
        assert_eq!(registry_of("busybox"), "docker.io");
        assert_eq!(registry_of("library/busybox:1.36"), "docker.io");
        assert_eq!(registry_of("ghcr.io/org/app:v1"), "ghcr.io");
        assert_eq!(
            registry_of("registry.local:5000/app"),
            "registry.local:5000"
        );
        assert_eq!(registry_of("localhost/app"), "localhost");
        assert_eq!(registry_of("docker.io/library/nginx"), "docker.io");
    }

    #[test]
    fn the_first_login_for_the_images_registry_is_used() {
        let user_pass = encode_base64(b"robot:s3cret:with-colon");
        let secrets = vec![
            ("absent".to_string(), None),
            (
                "other".to_string(),
                config_json(json!({"quay.io": {"username": "q", "password": "p"}})),
            ),
            (
                "ghcr".to_string(),
                config_json(json!({
                    "https://ghcr.io/v2/": {"auth": user_pass},
                    "https://index.docker.io/v1/": {"username": "hub", "password": "pw"},
                })),
            ),
            (
                "later".to_string(),
                config_json(json!({"ghcr.io": {"username": "not-me", "password": "x"}})),
            ),
        ];
        let a = registry_auth("ghcr.io/org/app:v1", &secrets)
            .expect("parses")
            .expect("a login");
        assert_eq!(a.server, "ghcr.io");
        assert_eq!(a.username.as_deref(), Some("robot"));
        assert_eq!(a.password.as_deref(), Some("s3cret:with-colon"));
        let hub = registry_auth("nginx:1.27", &secrets).unwrap().unwrap();
        assert_eq!(
            (hub.server.as_str(), hub.username.as_deref()),
            ("docker.io", Some("hub"))
        );
        assert_eq!(registry_auth("registry.local:5000/app", &secrets), Ok(None));
        assert!(
            !format!("{a:?}").contains("s3cret"),
            "Debug hides the password"
        );

        // The legacy format is the registry map itself.
        let legacy = vec![(
            "old".to_string(),
            secret(
                "kubernetes.io/dockercfg",
                ".dockercfg",
                &json!({"registry.local:5000": {"identitytoken": "tok"}}),
            ),
        )];
        let t = registry_auth("registry.local:5000/app", &legacy)
            .unwrap()
            .unwrap();
        assert_eq!(t.identity_token.as_deref(), Some("tok"));
    }

    #[test]
    fn a_bad_registry_secret_is_named() {
        let cases = [
            (
                secret("Opaque", ".dockerconfigjson", &json!({})),
                "imagePullSecret \"s\" is of type \"Opaque\"",
            ),
            (
                secret("kubernetes.io/dockerconfigjson", "other", &json!({})),
                "no .dockerconfigjson key",
            ),
            (
                config_json(json!({"ghcr.io": {"auth": encode_base64(b"no-colon")}})),
                "is not base64 of user:password",
            ),
            (
                config_json(json!({"ghcr.io": {"email": "a@b"}})),
                "has no username, auth or identitytoken",
            ),
            (
                secret(
                    "kubernetes.io/dockerconfigjson",
                    ".dockerconfigjson",
                    &json!([1]),
                ),
                "has no registry map",
            ),
        ];
        for (s, want) in cases {
            let e = registry_auth("ghcr.io/a", &[("s".to_string(), s)]).unwrap_err();
            assert!(e.contains(want), "{want}: {e}");
        }
    }
}
