//! client: the HTTP client of a node's API that the CLI, the integration
//! tests and the chaos harness share, so there is one place that knows the
//! paths, the bearer token and what an error answer looks like.

use std::time::Duration;

use serde_json::Value;

use crate::resource::{Kind, Object};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API answered with an error status.
    #[error("{message} (HTTP {status})")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The API's `error` text, or the body.
        message: String,
        /// Whether a handler answered (with its JSON error), rather than
        /// the router finding no route for the path.
        routed: bool,
    },
    /// Nothing listens at the address.
    #[error(
        "cannot reach the shoal API at {base} (is `shoal agent` running? set --addr or SHOAL_ADDR)"
    )]
    Unreachable { base: String },
    /// No answer within the time allowed.
    #[error("the shoal API at {base} did not answer in time")]
    Timeout { base: String },
    /// Any other transport failure.
    #[error("request to {base} failed: {msg}")]
    Request { base: String, msg: String },
    /// The answer was not what the call expects.
    #[error("the API's answer to {path}: {msg}")]
    Decode { path: String, msg: String },
}

impl ClientError {
    /// The HTTP status of an error answer (409: reread and retry; 404:
    /// gone; 429: not now), `None` for failures without one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the server has no route for the path at all (an older node).
    pub fn no_route(&self) -> bool {
        matches!(
            self,
            ClientError::Api {
                status: 404,
                routed: false,
                ..
            }
        )
    }
}

/// An error and its causes on one line (reqwest's own text hides them).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        src = s.source();
    }
    out
}

/// A client of one node's API.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl Client {
    /// A client of the API at `addr` (`host:port` or a URL), sending
    /// `token` as a bearer token when given.
    pub fn new(addr: &str, token: Option<String>) -> Result<Client, ClientError> {
        Client::with_ca(addr, token, None)
    }

    /// [`Client::new`] for a node that speaks TLS: the server must present
    /// a certificate signed by the CA in `ca_pem` (`shoal ca` prints it);
    /// no other authority is trusted. A bare `host:port` means https then.
    pub fn with_ca(
        addr: &str,
        token: Option<String>,
        ca_pem: Option<&[u8]>,
    ) -> Result<Client, ClientError> {
        Client::with_connect_timeout(addr, token, ca_pem, Duration::from_secs(5))
    }

    /// [`Client::with_ca`] giving up on a connection after `connect`: a
    /// caller that must tell "nothing was sent" from "no answer" (the
    /// chaos harness's writers) keeps this shorter than its request time
    /// limit.
    pub fn with_connect_timeout(
        addr: &str,
        token: Option<String>,
        ca_pem: Option<&[u8]>,
        connect: Duration,
    ) -> Result<Client, ClientError> {
        let scheme = if ca_pem.is_some() { "https" } else { "http" };
        let base = if addr.starts_with("http://") || addr.starts_with("https://") {
            addr.trim_end_matches('/').to_string()
        } else {
            format!("{scheme}://{}", addr.trim_end_matches('/'))
        };
        let mut builder = reqwest::Client::builder().connect_timeout(connect);
        if let Some(pem) = ca_pem {
            let tls = crate::api::tls::client_config(pem).map_err(|msg| ClientError::Request {
                base: base.clone(),
                msg: format!("the CA file: {msg}"),
            })?;
            builder = builder.use_preconfigured_tls(tls);
        }
        let http = builder.build().map_err(|e| ClientError::Request {
            base: base.clone(),
            msg: e.to_string(),
        })?;
        Ok(Client { base, http, token })
    }

    /// `http://host:port`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request and returns the raw response, whatever its status.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, ClientError> {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        let base = self.base.clone();
        req.send().await.map_err(|e| send_error(base, e))
    }

    /// Opens a connection upgraded to `proto` at `path` (a POST), for
    /// streams both ways (`exec`); an answer other than 101 is an error.
    pub async fn upgrade(&self, path: &str, proto: &str) -> Result<reqwest::Upgraded, ClientError> {
        self.upgrade_with_headers(path, proto)
            .await
            .map(|(_, io)| io)
    }

    /// Attaches to the main process of a pod's container (`container`, or
    /// the pod's only one); the connection then carries
    /// [`crate::api::frames`]. `size` is the terminal's first (columns, rows).
    pub async fn attach(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        stdin: bool,
        size: Option<(u16, u16)>,
    ) -> Result<Attach, ClientError> {
        use crate::api::frames;
        let mut path = format!("/v1/namespaces/{namespace}/pods/{pod}/attach?stdin={stdin}");
        if let Some(c) = container {
            path.push_str(&format!("&container={c}"));
        }
        if let Some((w, h)) = size {
            path.push_str(&format!("&width={w}&height={h}"));
        }
        let (headers, io) = self.upgrade_with_headers(&path, frames::UPGRADE).await?;
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let container =
            header(frames::ATTACH_CONTAINER_HEADER).ok_or_else(|| ClientError::Decode {
                path: path.clone(),
                msg: format!("no {} header", frames::ATTACH_CONTAINER_HEADER),
            })?;
        Ok(Attach {
            io,
            container,
            tty: header(frames::ATTACH_TTY_HEADER).as_deref() == Some("true"),
        })
    }

    /// [`Client::upgrade`], with the headers of the 101.
    async fn upgrade_with_headers(
        &self,
        path: &str,
        proto: &str,
    ) -> Result<(reqwest::header::HeaderMap, reqwest::Upgraded), ClientError> {
        let mut req = self
            .http
            .post(format!("{}{}", self.base, path))
            .header(reqwest::header::CONNECTION, "upgrade")
            .header(reqwest::header::UPGRADE, proto);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| send_error(self.base.clone(), e))?;
        let status = resp.status();
        if status != reqwest::StatusCode::SWITCHING_PROTOCOLS {
            let text = resp.text().await.unwrap_or_default();
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let api_error = value.get("error").and_then(Value::as_str);
            return Err(ClientError::Api {
                status: status.as_u16(),
                message: api_error
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("POST {path}: {}", text.trim())),
                routed: api_error.is_some(),
            });
        }
        let headers = resp.headers().clone();
        let io = resp.upgrade().await.map_err(|e| ClientError::Request {
            base: self.base.clone(),
            msg: format!("upgrading the connection: {e}"),
        })?;
        Ok((headers, io))
    }
}

/// An attached session ([`Client::attach`]).
pub struct Attach {
    /// The upgraded connection, carrying frames both ways.
    pub io: reqwest::Upgraded,
    /// The container attached to.
    pub container: String,
    /// Whether it has a terminal: its output then comes as one stream.
    pub tty: bool,
}

/// A failed send as the error the CLI explains.
fn send_error(base: String, e: reqwest::Error) -> ClientError {
    let chain = error_chain(&e);
    if chain.contains("certificate") || chain.contains("InvalidCertificate") {
        ClientError::Request {
            base,
            msg: format!(
                "TLS: {chain} (the node's certificate is not signed by the CA given with \
                 --ca-file / SHOAL_CA_FILE; `shoal ca` on a node prints the cluster's)"
            ),
        }
    } else if e.is_connect() {
        ClientError::Unreachable { base }
    } else if e.is_timeout() {
        ClientError::Timeout { base }
    } else {
        ClientError::Request { base, msg: chain }
    }
}

impl Client {
    /// Sends a request and returns its JSON answer (a body that is not
    /// JSON comes back as a string); an error status is an error.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Value, ClientError> {
        self.send_within(method, path, body, None).await
    }

    /// [`Self::send`] with a time limit for the whole request.
    pub async fn send_within(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Option<Duration>,
    ) -> Result<Value, ClientError> {
        let resp = self.call(method.clone(), path, body, timeout).await?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| ClientError::Decode {
            path: path.to_string(),
            msg: format!("reading the body: {e}"),
        })?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
        if status.is_success() {
            return Ok(value);
        }
        let api_error = value.get("error").and_then(Value::as_str);
        let routed = api_error.is_some();
        let mut message = api_error
            .map(str::to_string)
            .unwrap_or_else(|| text.trim().to_string());
        if message.is_empty() {
            // A route the server does not have answers with an empty body.
            message = format!(
                "{method} {path}: {}",
                status.canonical_reason().unwrap_or("failed")
            );
        }
        Err(ClientError::Api {
            status: status.as_u16(),
            message,
            routed,
        })
    }

    /// One object.
    pub async fn get(&self, kind: Kind, ns: &str, name: &str) -> Result<Object, ClientError> {
        let path = object_path(kind, ns, Some(name));
        let v = self.send(reqwest::Method::GET, &path, None).await?;
        serde_json::from_value(v).map_err(|e| ClientError::Decode {
            path,
            msg: e.to_string(),
        })
    }

    /// Every object of a kind, in one namespace or (`None`) in all.
    pub async fn list(&self, kind: Kind, ns: Option<&str>) -> Result<Vec<Object>, ClientError> {
        let path = match ns {
            Some(ns) => object_path(kind, ns, None),
            None => format!("/v1/{}", kind.plural()),
        };
        let mut v = self.send(reqwest::Method::GET, &path, None).await?;
        serde_json::from_value(v["items"].take()).map_err(|e| ClientError::Decode {
            path,
            msg: e.to_string(),
        })
    }

    /// Every node's resource usage (`metrics.k8s.io`).
    pub async fn node_metrics(
        &self,
    ) -> Result<Vec<crate::resource::usage::NodeMetrics>, ClientError> {
        self.metrics_list("/apis/metrics.k8s.io/v1beta1/nodes".into())
            .await
    }

    /// Pods' resource usage, in one namespace or (`None`) in all.
    pub async fn pod_metrics(
        &self,
        ns: Option<&str>,
    ) -> Result<Vec<crate::resource::usage::PodMetrics>, ClientError> {
        let path = match ns {
            Some(ns) => format!("/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods"),
            None => "/apis/metrics.k8s.io/v1beta1/pods".into(),
        };
        self.metrics_list(path).await
    }

    /// One pod's resource usage.
    pub async fn one_pod_metrics(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<crate::resource::usage::PodMetrics, ClientError> {
        let path = format!("/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/{name}");
        let v = self.send(reqwest::Method::GET, &path, None).await?;
        serde_json::from_value(v).map_err(|e| ClientError::Decode {
            path,
            msg: e.to_string(),
        })
    }

    async fn metrics_list<T: serde::de::DeserializeOwned>(
        &self,
        path: String,
    ) -> Result<Vec<T>, ClientError> {
        let v = self.send(reqwest::Method::GET, &path, None).await?;
        let list: crate::resource::usage::MetricsList<T> =
            serde_json::from_value(v).map_err(|e| ClientError::Decode {
                path,
                msg: e.to_string(),
            })?;
        Ok(list.items)
    }

    /// The state of Secrets at rest (`GET /v1/encryption`; admin only).
    pub async fn encryption_status(&self) -> Result<crate::api::EncryptionView, ClientError> {
        self.encryption(reqwest::Method::GET, "/v1/encryption")
            .await
    }

    /// Makes a new data key active; the leader then re-seals every Secret
    /// under it in the background (`POST /v1/encryption/rotate-key`).
    pub async fn rotate_data_key(&self) -> Result<crate::api::EncryptionView, ClientError> {
        self.encryption(reqwest::Method::POST, "/v1/encryption/rotate-key")
            .await
    }

    async fn encryption(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<crate::api::EncryptionView, ClientError> {
        let v = self.send(method, path, None).await?;
        serde_json::from_value(v).map_err(|e| ClientError::Decode {
            path: path.to_string(),
            msg: e.to_string(),
        })
    }

    /// Evicts a pod (`POST .../pods/NAME/eviction`): `Ok` once deleted; a
    /// 429 error while its Deployment cannot spare it; with `uid`, a 409
    /// error if the pod of that name is another one now.
    pub async fn evict(&self, ns: &str, name: &str, uid: Option<&str>) -> Result<(), ClientError> {
        let body = serde_json::json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": ns},
            "deleteOptions": {"preconditions": {"uid": uid}},
        });
        let path = format!("{}/eviction", object_path(Kind::Pod, ns, Some(name)));
        self.send(
            reqwest::Method::POST,
            &path,
            Some(body.to_string().into_bytes()),
        )
        .await
        .map(|_| ())
    }
}

/// The API path of a kind's collection in `ns`, or of the object `name` in it.
pub fn object_path(kind: Kind, ns: &str, name: Option<&str>) -> String {
    let base = if kind.namespaced() {
        format!("/v1/namespaces/{ns}/{}", kind.plural())
    } else {
        format!("/v1/{}", kind.plural())
    };
    match name {
        Some(n) => format!("{base}/{n}"),
        None => base,
    }
}
