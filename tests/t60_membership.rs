//! Gossip membership and the autopilot on five nodes: real `shoal agent`
//! processes for SIGKILL and SIGSTOP, in-process nodes for a partition.

mod common;

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Five real agents on loopback, each with its own data dir.
struct Cluster {
    children: Vec<Option<Child>>,
    dirs: Vec<tempfile::TempDir>,
    p2p: Vec<u16>,
    apis: Vec<Api>,
    api_ports: Vec<u16>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGCONT,
            );
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

const CONFIG: &str = "[raft]\nvoters = 3\ndead_voter_grace_ms = 3000\nheartbeat_ms = 150\nelection_timeout_min_ms = 600\nelection_timeout_max_ms = 1200\n";

impl Cluster {
    fn start(n: usize) -> Cluster {
        let ports = free_ports(2 * n);
        let (p2p, api_ports) = ports.split_at(n);
        let mut c = Cluster {
            children: Vec::new(),
            dirs: (0..n).map(|_| tempfile::tempdir().unwrap()).collect(),
            p2p: p2p.to_vec(),
            apis: api_ports
                .iter()
                .map(|p| Api::new(format!("127.0.0.1:{p}")))
                .collect(),
            api_ports: api_ports.to_vec(),
        };
        for i in 0..n {
            let child = c.spawn(i);
            c.children.push(Some(child));
        }
        c
    }

    fn spawn(&self, i: usize) -> Child {
        let dir = self.dirs[i].path();
        // Process pods run as nobody, below dir (data-pods).
        common::open_to_pods(dir);
        let cfg = dir.join("shoal.toml");
        std::fs::write(&cfg, CONFIG).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoal"));
        cmd.args(["agent", "--runtime", "process", "--name", &format!("m{i}")])
            // No ingress listeners on 0.0.0.0:80/443 from a test agent.
            .args(["--ingress-http-addr", "", "--ingress-https-addr", ""])
            // Each test is its own cluster: none may share another's DNS address.
            .args(["--dns-addr", "127.0.0.1:0"])
            .arg("--config")
            .arg(&cfg)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--p2p-addr", &format!("127.0.0.1:{}", self.p2p[i])])
            .args(["--api-addr", &format!("127.0.0.1:{}", self.api_ports[i])])
            .args(["--bootstrap-expect", &self.p2p.len().to_string()]);
        for (j, p) in self.p2p.iter().enumerate() {
            if j != i {
                cmd.args(["--join", &format!("127.0.0.1:{p}")]);
            }
        }
        let log = std::fs::File::create(dir.join("agent.log")).unwrap();
        cmd.env("RUST_LOG", "info,libp2p=warn,openraft=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn shoal agent")
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dirs[i].path().join("agent.log")).unwrap_or_default()
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn signal(&self, i: usize, sig: nix::sys::signal::Signal) {
        let c = self.children[i].as_ref().expect("running");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), sig).unwrap();
    }

    fn live(&self) -> Vec<usize> {
        (0..self.children.len())
            .filter(|i| self.children[*i].is_some())
            .collect()
    }
}

/// `name -> state` as node `api` sees the members.
async fn states(api: &Api) -> Option<Vec<(String, String)>> {
    let r = api
        .http
        .get(format!("{}/v1/members", api.base))
        .send()
        .await
        .ok()?;
    let v: Value = r.json().await.ok()?;
    Some(
        v["items"]
            .as_array()?
            .iter()
            .map(|m| {
                (
                    m["meta"]["name"].as_str().unwrap_or("?").to_string(),
                    m["state"].as_str().unwrap_or("?").to_string(),
                )
            })
            .collect(),
    )
}

async fn state_of(api: &Api, name: &str) -> Option<String> {
    states(api)
        .await?
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, s)| s)
}

async fn raft(api: &Api) -> Option<Value> {
    let r = api
        .http
        .get(format!("{}/v1/raft", api.base))
        .send()
        .await
        .ok()?;
    r.json().await.ok()
}

/// `(node id, name)` of a Raft group (`voters` or `learners`) in `/v1/raft`.
fn group(r: &Value, which: &str) -> Vec<(u64, String)> {
    r[which]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e[0].as_u64().unwrap_or(0),
                e[1]["name"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

async fn wait_all_alive(c: &Cluster, secs: u64) {
    let names: Vec<String> = (0..c.apis.len()).map(|i| format!("m{i}")).collect();
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let mut ok = true;
        for i in c.live() {
            let s = states(&c.apis[i]).await.unwrap_or_default();
            let alive: HashSet<&str> = s
                .iter()
                .filter(|(_, st)| st == "alive")
                .map(|(n, _)| n.as_str())
                .collect();
            if !names.iter().all(|n| alive.contains(n.as_str())) {
                ok = false;
            }
        }
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "members never all alive; node 0 log:\n{}",
            c.log(0)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn leader_index(c: &Cluster) -> Option<usize> {
    for i in c.live() {
        if let Some(r) = raft(&c.apis[i]).await
            && r["state"] == "Leader"
        {
            return Some(i);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_processes_detect_kill_replace_leader_and_ride_out_a_pause() {
    let mut c = Cluster::start(5);
    wait_all_alive(&c, 60).await;
    eventually(Duration::from_secs(30), "a leader and 3 voters", || async {
        match raft(&c.apis[0]).await {
            Some(r) => group(&r, "voters").len() == 3 && r["leader"].is_u64(),
            None => false,
        }
    })
    .await;
    let leader = leader_index(&c).await.expect("a leader");

    // A follower SIGKILLed: every survivor reports it down.
    let victim = (0..5).find(|i| *i != leader).unwrap();
    let t = Instant::now();
    c.kill(victim);
    let name = format!("m{victim}");
    for i in c.live() {
        let api = c.apis[i].clone();
        let name = name.clone();
        eventually(
            Duration::from_secs(15),
            "survivors report the killed node down",
            || {
                let api = api.clone();
                let name = name.clone();
                async move { state_of(&api, &name).await.as_deref() == Some("down") }
            },
        )
        .await;
    }
    eprintln!(
        "follower reported down by all survivors after {:?}",
        t.elapsed()
    );

    // A node paused for less than the suspicion timeout is never declared down.
    let paused = c.live().into_iter().find(|i| *i != leader).unwrap();
    let pname = format!("m{paused}");
    c.signal(paused, nix::sys::signal::Signal::SIGSTOP);
    let observe_until = Instant::now() + Duration::from_secs(5);
    let mut resumed = false;
    let pause_started = Instant::now();
    while Instant::now() < observe_until {
        if !resumed && pause_started.elapsed() >= Duration::from_millis(500) {
            c.signal(paused, nix::sys::signal::Signal::SIGCONT);
            resumed = true;
        }
        for i in c.live().into_iter().filter(|i| *i != paused) {
            let s = state_of(&c.apis[i], &pname).await;
            assert_ne!(
                s.as_deref(),
                Some("down"),
                "m{i} declared the paused node down"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The leader SIGKILLed: a new leader, the dead voter replaced by a learner, writes go on.
    let leader = leader_index(&c).await.expect("a leader");
    let dead_name = format!("m{leader}");
    c.kill(leader);
    let survivor = c.live()[0];
    let api = c.apis[survivor].clone();
    eventually(
        Duration::from_secs(30),
        "a new leader and 3 live voters",
        || {
            let api = api.clone();
            let dead_name = dead_name.clone();
            async move {
                let Some(r) = raft(&api).await else {
                    return false;
                };
                let voters = group(&r, "voters");
                r["leader"].is_u64()
                    && voters.len() == 3
                    && voters.iter().all(|(_, n)| !n.is_empty() && *n != dead_name)
            }
        },
    )
    .await;
    for k in 0..10 {
        let (code, v) = api.apply(&configmap(&format!("after-{k}"), "x")).await;
        assert_eq!(code, 200, "write after the leader died: {v}");
    }
    // The killed follower comes back with its data and is a member again.
    let child = c.spawn(victim);
    c.children[victim] = Some(child);
    let back = c.apis[victim].clone();
    eventually(
        Duration::from_secs(30),
        "the restarted node serves the writes",
        || {
            let back = back.clone();
            async move {
                // Not `Api::get`: the restarted node may not listen yet.
                let url = format!(
                    "{}/v1/namespaces/default/configmaps/after-9?consistent=false",
                    back.base
                );
                matches!(back.http.get(url).send().await, Ok(r) if r.status() == 200)
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_leave_is_left_at_once_and_hands_over_leadership() {
    let c = Cluster::start(3);
    wait_all_alive(&c, 60).await;
    eventually(Duration::from_secs(30), "a leader", || async {
        leader_index(&c).await.is_some()
    })
    .await;
    let leader = leader_index(&c).await.unwrap();
    let name = format!("m{leader}");
    let t = Instant::now();
    c.signal(leader, nix::sys::signal::Signal::SIGTERM);
    let other = (0..3).find(|i| *i != leader).unwrap();
    let api = c.apis[other].clone();
    eventually(Duration::from_secs(10), "the leaver is `left`", || {
        let api = api.clone();
        let name = name.clone();
        async move { state_of(&api, &name).await.as_deref() == Some("left") }
    })
    .await;
    eventually(
        Duration::from_secs(15),
        "a new leader without the leaver",
        || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let Some(r) = raft(&api).await else {
                    return false;
                };
                let mut all = group(&r, "voters");
                all.extend(group(&r, "learners"));
                r["leader"].is_u64() && !all.is_empty() && all.iter().all(|(_, n)| *n != name)
            }
        },
    )
    .await;
    eprintln!("graceful leave of the leader took {:?}", t.elapsed());
    let (code, v) = api.apply(&configmap("after-leave", "x")).await;
    assert_eq!(code, 200, "{v}");
}

// ---------------------------------------------------------------- partition

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partition_two_from_three_then_heal() {
    let dirs: Vec<tempfile::TempDir> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
    let ports = free_ports(5);
    let seeds: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let mut nodes = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        let seeds = seeds.clone();
        let port = ports[i];
        nodes.push(
            start_node(d.path(), &format!("p{i}"), move |c| {
                c.p2p_addr = format!("127.0.0.1:{port}");
                c.join = seeds
                    .into_iter()
                    .filter(|s| !s.ends_with(&format!(":{port}")))
                    .collect();
                c.bootstrap_expect = Some(5);
                c.raft.voters = 5;
            })
            .await,
        );
    }
    for n in &nodes {
        assert!(
            n.wait_ready(Duration::from_secs(30)).await,
            "{} ready",
            n.info.name
        );
    }
    eventually(Duration::from_secs(20), "5 voters", || async {
        nodes[0].store.status().voters.len() == 5
    })
    .await;
    let peers: Vec<libp2p::PeerId> = nodes
        .iter()
        .map(|n| {
            n.membership
                .members()
                .iter()
                .find(|m| m.is_self)
                .unwrap()
                .peer_id
                .parse()
                .unwrap()
        })
        .collect();
    // The leader stays with the majority: a minority without it is the case
    // that used to depose it at the heal (its nodes campaigned while cut off).
    let leader = nodes[0].store.leader().map(|(id, _)| id);
    let (minority, majority): (Vec<usize>, Vec<usize>) = {
        let (followers, leading): (Vec<usize>, Vec<usize>) =
            (0..5).partition(|i| Some(nodes[*i].store.node_id()) != leader);
        assert_eq!(leading.len(), 1, "one leader before the cut");
        let minority = followers[..2].to_vec();
        let majority = (0..5).filter(|i| !minority.contains(i)).collect();
        (minority, majority)
    };
    let cut = |side: &[usize], other: &[usize]| -> Vec<(usize, HashSet<libp2p::PeerId>)> {
        side.iter()
            .map(|i| (*i, other.iter().map(|j| peers[*j]).collect()))
            .collect()
    };
    for (i, blocked) in cut(&minority, &majority)
        .into_iter()
        .chain(cut(&majority, &minority))
    {
        nodes[i].net_handle().set_blocked(blocked).await;
    }
    // The majority elects (or keeps) a leader and takes writes.
    let maj = Api::new(nodes[majority[0]].api_addr);
    eventually(
        Duration::from_secs(30),
        "the majority accepts a write",
        || {
            let maj = maj.clone();
            async move { maj.apply(&configmap("during-partition", "x")).await.0 == 200 }
        },
    )
    .await;
    let term_of = |n: &shoal::node::Node| {
        let m = n.store.metrics();
        (m.current_leader, m.current_term)
    };
    let majority_leader = term_of(&nodes[majority[0]]);
    assert_eq!(majority_leader.0, leader, "the majority kept its leader");
    // Each side sees the other as down.
    eventually(
        Duration::from_secs(15),
        "the sides see each other down",
        || async {
            let names: Vec<String> = majority.iter().map(|j| format!("p{j}")).collect();
            nodes[minority[0]]
                .membership
                .members()
                .iter()
                .filter(|m| m.name().is_some_and(|n| names.iter().any(|x| x == n)))
                .all(|m| !m.is_up())
        },
    )
    .await;
    // The minority refuses writes with a clear error.
    let min = Api::new(nodes[minority[0]].api_addr);
    let (code, v) = min.apply(&configmap("from-minority", "x")).await;
    assert_ne!(code, 200, "the minority must not accept writes: {v}");
    let msg = v["error"].as_str().unwrap_or("").to_lowercase();
    assert!(
        msg.contains("leader") || msg.contains("quorum") || msg.contains("unavailable"),
        "unclear error from the minority: {v}"
    );

    // Heal: everything converges.
    for n in &nodes {
        n.net_handle().set_blocked(HashSet::new()).await;
    }
    for (i, n) in nodes.iter().enumerate() {
        eventually(Duration::from_secs(30), "all five alive again", || async {
            n.membership.members().iter().filter(|m| m.is_up()).count() == 5
        })
        .await;
        let api = Api::new(n.api_addr);
        eventually(
            Duration::from_secs(30),
            "the write reaches every node",
            || {
                let api = api.clone();
                async move {
                    api.get("/v1/namespaces/default/configmaps/during-partition")
                        .await
                        .0
                        == 200
                }
            },
        )
        .await;
        let (code, _) = api
            .get("/v1/namespaces/default/configmaps/from-minority?consistent=false")
            .await;
        assert_eq!(code, 404, "node {i} has the refused write");
    }
    let (code, v) = min.apply(&configmap("after-heal", "x")).await;
    assert_eq!(code, 200, "{v}");
    // The returning minority did not depose the leader.
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(
            term_of(n),
            majority_leader,
            "node {i}: (leader, term) changed across the heal"
        );
    }
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_back_with_empty_data_dir_leaves_no_phantom_voter() {
    let mut c = Cluster::start(3);
    wait_all_alive(&c, 60).await;
    eventually(Duration::from_secs(30), "3 voters", || async {
        match raft(&c.apis[0]).await {
            Some(r) => group(&r, "voters").len() == 3 && r["leader"].is_u64(),
            None => false,
        }
    })
    .await;
    let leader = leader_index(&c).await.expect("a leader");
    let victim = (0..3).find(|i| *i != leader).unwrap();
    let old = raft(&c.apis[victim]).await.unwrap()["node_id"]
        .as_u64()
        .expect("node_id");
    c.kill(victim);
    // The host is replaced: same name and address, nothing on disk.
    for entry in std::fs::read_dir(c.dirs[victim].path()).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            std::fs::remove_dir_all(&p).unwrap();
        } else if !p.ends_with("agent.log") {
            std::fs::remove_file(&p).unwrap();
        }
    }
    let child = c.spawn(victim);
    c.children[victim] = Some(child);
    let api = c.apis[leader].clone();
    let name = format!("m{victim}");
    eventually(
        Duration::from_secs(40),
        "the new identity is a voter, the old one gone",
        || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let Some(r) = raft(&api).await else {
                    return false;
                };
                let voters = group(&r, "voters");
                let mut all = voters.clone();
                all.extend(group(&r, "learners"));
                let named: Vec<&(u64, String)> = all.iter().filter(|(_, n)| *n == name).collect();
                voters.len() == 3
                    && named.len() == 1
                    && named[0].0 != old
                    && voters.iter().any(|(_, n)| *n == name)
            }
        },
    )
    .await;
}
