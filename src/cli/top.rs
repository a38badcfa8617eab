//! `shoal top nodes` and `shoal top pods`, printed as kubectl prints them,
//! from the resource metrics API.

use anyhow::bail;
use clap::{Subcommand, ValueEnum};

use crate::resource::Kind;
use crate::resource::status::NodeStatus;
use crate::resource::types::{parse_cpu_millis, parse_memory_bytes};
use crate::resource::usage::{NodeMetrics, PodMetrics};

use super::client::*;
use super::emit;
use super::objects::render_rows;

/// What `shoal top` shows.
#[derive(Debug, Subcommand)]
pub enum TopCmd {
    /// CPU and memory of each node, and the share of its allocatable.
    #[command(alias = "node", alias = "no")]
    Nodes {
        /// Only this node.
        name: Option<String>,
        /// Order by `cpu` or `memory`, the largest first.
        #[arg(long)]
        sort_by: Option<SortBy>,
    },
    /// CPU and memory of each pod.
    #[command(alias = "pod", alias = "po")]
    Pods {
        /// Only this pod.
        name: Option<String>,
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        /// Pods of every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// One line per container.
        #[arg(long)]
        containers: bool,
        /// Order by `cpu` or `memory`, the largest first.
        #[arg(long)]
        sort_by: Option<SortBy>,
    },
}

/// A `--sort-by` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortBy {
    /// CPU use.
    Cpu,
    /// Memory use.
    Memory,
}

/// Runs `shoal top`.
pub(super) async fn top(client: &Client, cmd: TopCmd) -> anyhow::Result<()> {
    match cmd {
        TopCmd::Nodes { name, sort_by } => {
            let mut usage = client.node_metrics().await.map_err(unavailable)?;
            if let Some(n) = &name {
                usage.retain(|m| &m.metadata.name == n);
                if usage.is_empty() {
                    bail!("node {n}: no metrics (not a member, down, or not sampled yet)");
                }
            }
            let nodes = client.list(Kind::Node, None).await?;
            let alloc = |name: &str| {
                let n = nodes.iter().find(|o| o.metadata.name == name)?;
                let st: NodeStatus = n.status_or_default();
                let get = |k: &str| st.allocatable.get(k).and_then(|v| v.as_str());
                Some((
                    get("cpu").and_then(|v| parse_cpu_millis(v).ok())?,
                    get("memory").and_then(|v| parse_memory_bytes(v).ok())?,
                ))
            };
            emit(format_args!("{}", nodes_table(&usage, alloc, sort_by)));
            Ok(())
        }
        TopCmd::Pods {
            name,
            namespace,
            all_namespaces,
            containers,
            sort_by,
        } => {
            let ns = namespace.unwrap_or_else(|| "default".into());
            let mut pods = match (&name, all_namespaces) {
                (Some(n), _) => vec![client.one_pod_metrics(&ns, n).await.map_err(unavailable)?],
                (None, true) => client.pod_metrics(None).await.map_err(unavailable)?,
                (None, false) => client.pod_metrics(Some(&ns)).await.map_err(unavailable)?,
            };
            if pods.is_empty() {
                match all_namespaces {
                    true => eprintln!("No resources found"),
                    false => eprintln!("No resources found in {ns} namespace."),
                }
                return Ok(());
            }
            sort_pods(&mut pods, sort_by);
            emit(format_args!(
                "{}",
                pods_table(&pods, all_namespaces, containers)
            ));
            Ok(())
        }
    }
}

fn unavailable(e: ClientError) -> anyhow::Error {
    if e.no_route() {
        anyhow::anyhow!("this node does not serve the resource metrics API (metrics.k8s.io)")
    } else {
        e.into()
    }
}

fn mib(bytes: u64) -> String {
    format!("{}Mi", bytes / (1024 * 1024))
}

fn percent(used: u64, of: Option<u64>) -> String {
    match of {
        Some(of) if of > 0 => format!("{}%", used * 100 / of),
        _ => "<unknown>".into(),
    }
}

/// The `top nodes` table; `alloc` gives a node's allocatable (millicores, bytes).
fn nodes_table(
    usage: &[NodeMetrics],
    alloc: impl Fn(&str) -> Option<(u64, u64)>,
    sort_by: Option<SortBy>,
) -> String {
    let mut usage: Vec<&NodeMetrics> = usage.iter().collect();
    match sort_by {
        Some(SortBy::Cpu) => usage.sort_by_key(|m| std::cmp::Reverse(m.usage.cpu_millis())),
        Some(SortBy::Memory) => usage.sort_by_key(|m| std::cmp::Reverse(m.usage.memory_bytes())),
        None => {}
    }
    let mut rows = vec![
        ["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"]
            .map(String::from)
            .to_vec(),
    ];
    for m in usage {
        let (cpu, mem) = (m.usage.cpu_millis(), m.usage.memory_bytes());
        let a = alloc(&m.metadata.name);
        rows.push(vec![
            m.metadata.name.clone(),
            format!("{cpu}m"),
            percent(cpu, a.map(|a| a.0)),
            mib(mem),
            percent(mem, a.map(|a| a.1)),
        ]);
    }
    render_rows(&rows)
}

fn sort_pods(pods: &mut [PodMetrics], sort_by: Option<SortBy>) {
    match sort_by {
        Some(SortBy::Cpu) => pods.sort_by_key(|p| std::cmp::Reverse(p.total().0)),
        Some(SortBy::Memory) => pods.sort_by_key(|p| std::cmp::Reverse(p.total().1)),
        None => {}
    }
}

/// The `top pods` table: per pod, or per container with `containers`.
fn pods_table(pods: &[PodMetrics], with_ns: bool, containers: bool) -> String {
    let mut header = Vec::new();
    if with_ns {
        header.push("NAMESPACE");
    }
    header.extend(match containers {
        true => &["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"][..],
        false => &["NAME", "CPU(cores)", "MEMORY(bytes)"][..],
    });
    let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
    for p in pods {
        let ns = p.metadata.namespace.clone().unwrap_or_default();
        let mut lead = |rest: Vec<String>| {
            let mut row = Vec::new();
            if with_ns {
                row.push(ns.clone());
            }
            row.extend(rest);
            rows.push(row);
        };
        if containers {
            for c in &p.containers {
                lead(vec![
                    p.metadata.name.clone(),
                    c.name.clone(),
                    format!("{}m", c.usage.cpu_millis()),
                    mib(c.usage.memory_bytes()),
                ]);
            }
        } else {
            let (cpu, mem) = p.total();
            lead(vec![p.metadata.name.clone(), format!("{cpu}m"), mib(mem)]);
        }
    }
    render_rows(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::usage::{ContainerSample, NodeSample, PodSample};

    fn pod(ns: &str, name: &str, cs: &[(&str, u64, u64)]) -> PodMetrics {
        PodSample {
            namespace: ns.into(),
            name: name.into(),
            timestamp_ms: 0,
            window_ms: 5000,
            containers: cs
                .iter()
                .map(|(n, cpu, mem)| ContainerSample {
                    name: n.to_string(),
                    cpu_nanocores: *cpu,
                    memory_bytes: *mem,
                    cpu_seconds_total: 0.0,
                })
                .collect(),
        }
        .to_metrics(Default::default(), "t")
    }

    #[test]
    fn nodes_print_as_kubectl_with_shares_of_allocatable() {
        let n = |name: &str, cpu, mem| {
            NodeSample {
                node: name.into(),
                window_ms: 5000,
                cpu_nanocores: cpu,
                memory_bytes: mem,
                ..Default::default()
            }
            .to_metrics(Default::default(), "t")
        };
        let usage = vec![
            n("a", 250_000_000, 512 << 20),
            n("b", 1_500_000_000, 1 << 30),
        ];
        let alloc = |name: &str| (name == "a").then_some((2000, 2048 << 20));
        assert_eq!(
            nodes_table(&usage, alloc, Some(SortBy::Cpu)),
            "NAME   CPU(cores)   CPU%        MEMORY(bytes)   MEMORY%\n\
             b      1500m        <unknown>   1024Mi          <unknown>\n\
             a      250m         12%         512Mi           25%\n"
        );
    }

    #[test]
    fn pods_print_per_pod_or_per_container_and_sort() {
        let mut pods = vec![
            pod("default", "small", &[("app", 1_000_000, 8 << 20)]),
            pod(
                "kube",
                "big",
                &[("app", 100_000_000, 8 << 20), ("side", 20_000_000, 2 << 20)],
            ),
        ];
        sort_pods(&mut pods, Some(SortBy::Cpu));
        assert_eq!(
            pods_table(&pods, false, false),
            "NAME    CPU(cores)   MEMORY(bytes)\nbig     120m         10Mi\nsmall   1m           8Mi\n"
        );
        assert_eq!(
            pods_table(&pods[..1], true, true),
            "NAMESPACE   POD   NAME   CPU(cores)   MEMORY(bytes)\n\
             kube        big   app    100m         8Mi\n\
             kube        big   side   20m          2Mi\n"
        );
    }
}
