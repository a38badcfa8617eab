//! shoal: a container orchestrator with no control plane.
//!
//! Every host runs the same daemon. The modules, bottom-up:
//!
//! - [`net`]: one libp2p swarm per node; every node-to-node request.
//! - [`membership`]: SWIM gossip (foca) over the swarm: who is alive, and their metadata.
//! - [`store`]: the desired state, replicated by openraft on rocksdb.
//! - [`autopilot`]: how a node gets into a cluster (dev, bootstrap, join).
//! - [`resource`]: the object model (kinds, keys, typed specs).
//! - [`manifest`]: YAML manifests in Kubernetes' shape, validated with field paths.
//! - [`crd`]: CustomResourceDefinitions, their schemas, and how custom objects are keyed.
//! - [`runtime`]: container engines behind one trait (Docker, host processes).
//! - [`controller`]: leader-only loops: node lifecycle, Deployments, ReplicaSets.
//! - [`scheduler`]: binds pending pods to nodes (filters, pack/spread scoring), on the leader.
//! - [`agent`]: runs and heals the pods bound to this node; logs and events.
//! - [`columns`]: what a table of each kind shows (`shoal get`, kubectl's Table answers).
//! - [`api`]: the HTTP API every node serves.
//! - [`node`]: starts and stops one daemon's components.
//! - [`config`]: the daemon's configuration.
//! - [`cli`]: the `shoal` command line.

pub mod admission;
pub mod agent;
pub mod api;
pub mod autopilot;
pub mod cli;
pub mod client;
pub mod columns;
pub mod config;
pub mod controller;
pub mod crd;
pub mod discovery;
#[doc(hidden)]
pub mod fuzzing;
pub mod ingress;
pub mod manifest;
pub mod membership;
pub mod net;
pub mod node;
pub mod resource;
pub mod runtime;
pub mod scheduler;
pub mod store;
pub mod telemetry;
