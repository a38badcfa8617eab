//! `shoal token create|list|revoke`: API credentials with roles.

use serde_json::{Value, json};

use super::{Output, emit};
use crate::client::Client;
use crate::resource::Kind;
use crate::resource::types::Role;

pub(super) async fn create(
    client: &Client,
    name: &str,
    role: Role,
    ttl: Option<u64>,
    description: Option<String>,
) -> anyhow::Result<()> {
    let mut body = json!({ "name": name, "role": role.as_str() });
    if let Some(t) = ttl {
        body["ttlSeconds"] = json!(t);
    }
    if let Some(d) = description {
        body["description"] = json!(d);
    }
    let resp = client
        .send(
            reqwest::Method::POST,
            "/v1/tokens",
            Some(serde_json::to_vec(&body)?),
        )
        .await?;
    let token = resp
        .get("token")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow::anyhow!("the API's answer holds no token"))?;
    // The secret on stdout alone, so `TOKEN=$(shoal token create ...)` works;
    // the advice on stderr.
    emit(format_args!("{token}\n"));
    eprintln!(
        "token {name} ({}) created; it is shown only now. Use it with --token or SHOAL_TOKEN.",
        role.as_str()
    );
    Ok(())
}

pub(super) async fn list(client: &Client, output: Output) -> anyhow::Result<()> {
    super::objects::get(client, "tokens", None, None, false, output).await
}

pub(super) async fn revoke(client: &Client, name: &str) -> anyhow::Result<()> {
    client
        .send(
            reqwest::Method::DELETE,
            &crate::client::object_path(Kind::Token, "", Some(name)),
            None,
        )
        .await?;
    emit(format_args!("token {name} revoked\n"));
    Ok(())
}
