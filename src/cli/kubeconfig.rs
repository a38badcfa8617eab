//! `shoal kubeconfig`: a kubeconfig for kubectl, pointing at the node asked
//! through, with one more context per other member (every node serves the
//! Kubernetes API, so `kubectl --context shoal-NODE` picks another).

use anyhow::Context as _;
use base64::Engine as _;
use serde_json::Value;

use super::client::Client;

/// One API server a context points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Server {
    /// The context's name.
    pub context: String,
    /// `http://HOST:PORT` or `https://HOST:PORT`.
    pub url: String,
}

/// Prints the kubeconfig.
pub(super) async fn kubeconfig(
    client: &Client,
    token: Option<&str>,
    ca_pem: Option<&[u8]>,
) -> anyhow::Result<()> {
    let members = client
        .send(reqwest::Method::GET, "/v1/members", None)
        .await
        .context("listing the members, for the other nodes' contexts")?;
    let base = client.base().to_string();
    let scheme = if base.starts_with("https://") {
        "https"
    } else {
        "http"
    };
    let mut servers = vec![Server {
        context: "shoal".into(),
        url: base.clone(),
    }];
    servers.extend(member_servers(&members, scheme, &base));
    print!("{}", render(&servers, token, ca_pem));
    Ok(())
}

/// The other members' API servers, by name; addresses that only mean
/// something on the node itself (0.0.0.0) are left out.
pub(super) fn member_servers(members: &Value, scheme: &str, asked: &str) -> Vec<Server> {
    let mut out = Vec::new();
    for m in members["items"].as_array().into_iter().flatten() {
        let (Some(name), Some(addr)) = (m["meta"]["name"].as_str(), m["meta"]["apiAddr"].as_str())
        else {
            continue;
        };
        let url = format!("{scheme}://{addr}");
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        if url == asked || matches!(host, "0.0.0.0" | "[::]" | "") {
            continue;
        }
        out.push(Server {
            context: format!("shoal-{name}"),
            url,
        });
    }
    out
}

/// The kubeconfig text. Strings are written as JSON strings, which YAML
/// reads as they are.
pub(super) fn render(servers: &[Server], token: Option<&str>, ca_pem: Option<&[u8]>) -> String {
    let q = |s: &str| Value::String(s.to_string()).to_string();
    let mut out = String::from("apiVersion: v1\nkind: Config\nclusters:\n");
    for s in servers {
        out += &format!(
            "- name: {}\n  cluster:\n    server: {}\n",
            q(&s.context),
            q(&s.url)
        );
        if s.url.starts_with("https://") {
            match ca_pem {
                Some(pem) => {
                    let data = base64::engine::general_purpose::STANDARD.encode(pem);
                    out += &format!("    certificate-authority-data: {}\n", q(&data));
                }
                None => {
                    out += "    # No --ca-file given: the certificate is not checked. Pass \
                            `--ca-file` (from `shoal ca`) to verify it.\n    \
                            insecure-skip-tls-verify: true\n";
                }
            }
        }
    }
    if token.is_some() && servers.iter().any(|s| s.url.starts_with("http://")) {
        out += "# kubectl sends the token only over https: a plain-http API (loopback, \
                no api.token) needs none.\n";
    }
    out += "users:\n- name: \"shoal\"\n  user:";
    match token {
        Some(t) => out += &format!("\n    token: {}\n", q(t)),
        None => out += " {}\n",
    }
    out += "contexts:\n";
    for s in servers {
        out += &format!(
            "- name: {c}\n  context:\n    cluster: {c}\n    user: \"shoal\"\n    namespace: \"default\"\n",
            c = q(&s.context)
        );
    }
    out += &format!(
        "current-context: {}\n",
        q(servers.first().map_or("shoal", |s| &s.context))
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_context_per_node() {
        let members = json!({"items": [
            {"meta": {"name": "a", "apiAddr": "10.0.0.1:7947"}},
            {"meta": {"name": "b", "apiAddr": "10.0.0.2:7947"}},
            {"meta": {"name": "c", "apiAddr": "0.0.0.0:7947"}},
            {"meta": null},
        ]});
        let s = member_servers(&members, "https", "https://10.0.0.1:7947");
        assert_eq!(
            s,
            vec![Server {
                context: "shoal-b".into(),
                url: "https://10.0.0.2:7947".into()
            }]
        );
    }

    #[test]
    fn token_and_tls() {
        let servers = vec![
            Server {
                context: "shoal".into(),
                url: "https://10.0.0.1:7947".into(),
            },
            Server {
                context: "shoal-b".into(),
                url: "https://10.0.0.2:7947".into(),
            },
        ];
        let text = render(&servers, Some("admin.abc"), Some(b"PEM"));
        assert!(text.contains("token: \"admin.abc\""), "{text}");
        assert!(
            text.contains("certificate-authority-data: \"UEVN\""),
            "{text}"
        );
        assert!(text.contains("current-context: \"shoal\""), "{text}");
        assert_eq!(text.matches("cluster: \"shoal-b\"").count(), 1, "{text}");
        let text = render(&servers[..1], None, None);
        assert!(text.contains("insecure-skip-tls-verify: true"), "{text}");
        assert!(text.contains("user: {}"), "{text}");
        let plain = render(
            &[Server {
                context: "shoal".into(),
                url: "http://127.0.0.1:7947".into(),
            }],
            None,
            None,
        );
        assert!(!plain.contains("insecure"), "{plain}");
    }
}
