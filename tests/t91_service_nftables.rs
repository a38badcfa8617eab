//! Services through the kernel data path (`discovery.proxy_mode =
//! "nftables"`): a real TCP connection to a cluster IP and to a node port
//! reaches a backend through DNAT in the node's own nftables table, an
//! endpoint that fails readiness leaves the table at once while the
//! connections it already has stay open, and a stop leaves no table behind.
//! Needs root and `nft`, as the daemon's kernel mode does: it fails, naming
//! what is missing, without them.
//!
//! The rest of the Service suite runs on this path with
//! `SHOAL_TEST_PROXY_MODE=nftables cargo test --test t90_discovery`.

mod common;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::cluster::*;
use common::*;
use serde_json::Value;
use shoal::discovery::nft::ProxyMode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn read_response(mut s: tokio::net::TcpStream) -> Result<String, String> {
    let mut out = String::new();
    s.read_to_string(&mut out)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let (head, body) = out
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP response: {out:?}"))?;
    if !head.starts_with("HTTP/1.") || !head.contains(" 200 ") {
        return Err(format!("status: {head}"));
    }
    Ok(body.trim().to_string())
}

async fn send_get(s: &mut tokio::net::TcpStream) -> Result<(), String> {
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .map_err(|e| format!("write: {e}"))
}

async fn http_get(addr: SocketAddr) -> Result<String, String> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        send_get(&mut s).await?;
        read_response(s).await
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .unwrap_or_else(|_| Err("timeout".into()))
}

async fn endpoints(api: &Api, name: &str) -> Vec<String> {
    let (_, v) = api
        .get(&format!("/v1/namespaces/default/endpoints/{name}"))
        .await;
    v["ports"][0]["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["pod"].as_str().map(str::to_string))
        .collect()
}

fn web_pod(name: &str, node: &str, port: u16, dir: &std::path::Path) -> String {
    let d = dir.join(name);
    let d = d.display();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{app: echo}}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: web\n    image: host\n    command: [\"/bin/sh\", \"-c\", \"mkdir -p {d} && echo {name} > {d}/index.html && touch {d}/ready && exec /bin/busybox httpd -f -p 127.0.0.1:{port} -h {d}\"]\n    ports:\n    - name: http\n      containerPort: {port}\n    readinessProbe:\n      httpGet: {{path: /ready, port: {port}}}\n      periodSeconds: 1\n      failureThreshold: 1\n"
    )
}

/// `nft list table ip NAME`, or `None` when there is no such table.
fn nft_table(name: &str) -> Option<String> {
    let out = std::process::Command::new("nft")
        .args(["list", "table", "ip", name])
        .output()
        .expect("running nft: this test needs nftables installed");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_ip_and_node_port_through_nftables_dnat() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the nftables data path needs root (CAP_NET_ADMIN); run this test as root"
    );
    let c = Cluster::start("kn", &["2", "2"], |c| {
        c.discovery.proxy_mode = ProxyMode::Nftables;
    })
    .await;
    let api = c.api();
    let tables: Vec<String> = (0..2)
        .map(|i| {
            c.nodes[i]
                .as_ref()
                .unwrap()
                .discovery
                .as_ref()
                .expect("discovery runs")
                .kernel_table()
                .expect("proxy_mode nftables: the node serves Services from a kernel table")
        })
        .collect();
    assert_ne!(tables[0], tables[1], "each node owns its own table");
    for t in &tables {
        assert!(nft_table(t).is_some(), "table {t} is in the kernel");
    }

    let www = pod_writable_tempdir();
    let ports = free_ports(2);
    for (i, name) in ["echo-a", "echo-b"].iter().enumerate() {
        let (code, v) = api
            .apply(&web_pod(name, &format!("kn{i}"), ports[i], www.path()))
            .await;
        assert_eq!(code, 200, "{v}");
    }
    let (code, v) = api
        .apply("apiVersion: v1\nkind: Service\nmetadata:\n  name: echo\nspec:\n  type: NodePort\n  selector: {app: echo}\n  ports:\n  - name: web\n    port: 80\n    targetPort: http\n")
        .await;
    assert_eq!(code, 200, "{v}");
    let (code, svc): (u16, Value) = api.get("/v1/namespaces/default/services/echo").await;
    assert_eq!(code, 200, "{svc}");
    let vip: Ipv4Addr = svc["spec"]["clusterIP"]
        .as_str()
        .expect("a cluster IP")
        .parse()
        .unwrap();
    let node_port = svc["spec"]["ports"][0]["nodePort"]
        .as_u64()
        .expect("a node port") as u16;
    for i in 0..2 {
        let api_i = Api::new(c.nodes[i].as_ref().unwrap().api_addr);
        eventually(Duration::from_secs(30), "two ready endpoints", || {
            let api_i = api_i.clone();
            async move { endpoints(&api_i, "echo").await.len() == 2 }
        })
        .await;
    }
    // Both nodes' tables DNAT to both endpoints: the kernel, not a
    // listener, serves (no balancer listens on the cluster IP).
    for t in &tables {
        eventually(
            Duration::from_secs(10),
            "both endpoints in the table",
            || {
                let (t, ports) = (t.clone(), ports.clone());
                async move {
                    nft_table(&t).is_some_and(|text| {
                        ports
                            .iter()
                            .all(|p| text.contains(&format!("dnat to 127.0.0.1:{p}")))
                            && text.contains(&format!("{vip} . 80"))
                            && text.contains(&format!("{node_port} : goto"))
                    })
                }
            },
        )
        .await;
    }
    let listeners = std::process::Command::new("ss")
        .args(["-Hltn", &format!("src = {vip}")])
        .output()
        .expect("ss");
    assert!(
        String::from_utf8_lossy(&listeners.stdout).trim().is_empty(),
        "nothing listens on the cluster IP in kernel mode: {}",
        String::from_utf8_lossy(&listeners.stdout)
    );

    for addr in [
        SocketAddr::from((vip, 80)),
        SocketAddr::from(([127, 0, 0, 1], node_port)),
    ] {
        let mut seen: BTreeMap<String, u32> = BTreeMap::new();
        for _ in 0..40 {
            let body = http_get(addr).await.expect("request through DNAT");
            *seen.entry(body).or_default() += 1;
        }
        assert_eq!(
            seen.len(),
            2,
            "spread over both replicas via {addr}: {seen:?}"
        );
        assert!(seen.values().all(|n| *n >= 5), "{seen:?}");
    }

    // Connections opened now (about half on echo-b) must outlive echo-b's
    // removal: conntrack keeps them on their endpoint.
    let mut open = Vec::new();
    for _ in 0..16 {
        open.push(
            tokio::net::TcpStream::connect(SocketAddr::from((vip, 80)))
                .await
                .expect("connect through DNAT"),
        );
    }
    std::fs::remove_file(www.path().join("echo-b").join("ready")).unwrap();
    for i in 0..2 {
        let api_i = Api::new(c.nodes[i].as_ref().unwrap().api_addr);
        eventually(
            Duration::from_secs(20),
            "echo-b out of the endpoints",
            || {
                let api_i = api_i.clone();
                async move { endpoints(&api_i, "echo").await == vec!["echo-a".to_string()] }
            },
        )
        .await;
    }
    for t in &tables {
        eventually(Duration::from_secs(5), "echo-b out of the table", || {
            let (t, ports) = (t.clone(), ports.clone());
            async move {
                nft_table(&t).is_some_and(|text| {
                    !text.contains(&format!("dnat to 127.0.0.1:{}", ports[1]))
                        && text.contains(&format!("dnat to 127.0.0.1:{}", ports[0]))
                })
            }
        })
        .await;
    }
    for _ in 0..20 {
        assert_eq!(
            http_get(SocketAddr::from((vip, 80))).await.as_deref(),
            Ok("echo-a")
        );
    }
    let mut answers: BTreeMap<String, u32> = BTreeMap::new();
    for mut s in open {
        send_get(&mut s)
            .await
            .expect("an open connection still writes");
        let body = tokio::time::timeout(Duration::from_secs(5), read_response(s))
            .await
            .expect("an open connection still answers")
            .expect("an open connection still answers");
        *answers.entry(body).or_default() += 1;
    }
    assert!(
        answers.contains_key("echo-b"),
        "connections opened before echo-b left finish on echo-b: {answers:?}"
    );

    // Deleting the Service takes it out of the kernel.
    let (code, _) = api
        .send(
            reqwest::Method::DELETE,
            "/v1/namespaces/default/services/echo",
            None,
        )
        .await;
    assert_eq!(code, 200);
    eventually(
        Duration::from_secs(10),
        "cluster IP no longer served",
        || async move {
            tokio::net::TcpStream::connect(SocketAddr::from((vip, 80)))
                .await
                .is_err()
        },
    )
    .await;
    c.stop().await;
    for t in &tables {
        assert!(nft_table(t).is_none(), "table {t} deleted at stop");
    }
}
