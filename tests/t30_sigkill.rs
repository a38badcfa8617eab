//! Durability across a real SIGKILL of a `shoal agent` process.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_write_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let p = free_ports(2);
    let (api_port, p2p_port) = (p[0], p[1]);
    let mut child = spawn_dev_agent(dir.path(), "killme", "process", api_port, p2p_port);
    let api = Api::new(format!("127.0.0.1:{api_port}"));
    wait_healthy(&api).await;
    let mut acked = Vec::new();
    for i in 0..20 {
        let name = format!("durable-{i}");
        let (code, v) = api.apply(&configmap(&name, &i.to_string())).await;
        assert_eq!(code, 200, "{v}");
        acked.push(name);
    }
    // SIGKILL right after the last acknowledgement: no chance to flush anything.
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");

    let mut child = spawn_dev_agent(dir.path(), "killme", "process", api_port, p2p_port);
    wait_healthy(&api).await;
    for name in &acked {
        let (code, v) = api
            .get(&format!("/v1/namespaces/default/configmaps/{name}"))
            .await;
        assert_eq!(code, 200, "{name} lost after SIGKILL: {v}");
    }
    child.kill().ok();
    child.wait().ok();
}
