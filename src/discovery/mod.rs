//! Service discovery: DNS for `NAME.NAMESPACE.svc.shoal` and a TCP load
//! balancer per Service port, both served from this node's replica.

pub mod dns;
pub mod table;

pub use table::{Endpoint, PortEntry, ServiceEntry, ServiceTable};
