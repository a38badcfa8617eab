//! Cluster IPs and node ports for the Services a request writes.

use super::*;

/// Cluster IPs and node ports in use, so a Service being written gets free
/// ones. A re-applied Service that omits them keeps its live ones, as
/// Kubernetes does; a live cluster IP cannot be changed.
/// The list is read on the first Service of a request only, so writes of
/// other kinds never pay for it.
#[derive(Default)]
pub(super) struct ServiceAddresses {
    used: Option<(HashSet<std::net::Ipv4Addr>, HashSet<u16>)>,
}

impl ServiceAddresses {
    pub(super) fn load(s: &ApiState) -> ApiResult<(HashSet<std::net::Ipv4Addr>, HashSet<u16>)> {
        let (services, _) = s.store.list(Kind::Service, None)?;
        let mut ips = HashSet::new();
        let mut ports = HashSet::new();
        for svc in &services {
            let Ok(b) = ServiceBody::from_object(svc) else {
                continue;
            };
            if let Some(ip) = b.spec.cluster_ip.as_deref().and_then(|i| i.parse().ok()) {
                ips.insert(ip);
            }
            ports.extend(b.spec.ports.iter().filter_map(|p| p.node_port));
        }
        Ok((ips, ports))
    }

    pub(super) fn assign(
        &mut self,
        s: &ApiState,
        key: &ObjectKey,
        obj: &mut Object,
    ) -> ApiResult<()> {
        if key.kind != Kind::Service {
            return Ok(());
        }
        if self.used.is_none() {
            self.used = Some(Self::load(s)?);
        }
        let Some((ips, ports)) = self.used.as_mut() else {
            return Ok(());
        };
        let unprocessable = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m);
        let mut body = ServiceBody::from_object(obj)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
        let live = s
            .store
            .get(key)?
            .and_then(|o| ServiceBody::from_object(&o).ok());
        let live_ip = live.as_ref().and_then(|l| l.spec.cluster_ip.clone());
        let spec = &mut body.spec;
        match (&spec.cluster_ip, &live_ip) {
            (Some(want), Some(have)) if want != have => {
                return Err(unprocessable(format!(
                    "spec.clusterIP: field is immutable (is {have}, asked {want}); delete and re-create the Service"
                )));
            }
            (None, Some(have)) => spec.cluster_ip = Some(have.clone()),
            (Some(want), _) if want == "None" => {}
            (Some(want), _) => {
                let cidr = s.discovery.service_cidr;
                let ip: std::net::Ipv4Addr = want.parse().map_err(|_| {
                    unprocessable(format!("spec.clusterIP: {want:?} is not an IPv4 address"))
                })?;
                if !cidr.contains(ip) || !cidr.is_host(ip) {
                    return Err(unprocessable(format!(
                        "spec.clusterIP: {ip} is not a host address of the cluster's service range {} (discovery.service_cidr)",
                        s.discovery.service_cidr
                    )));
                }
                if ips.contains(&ip) && live_ip.as_deref() != Some(want.as_str()) {
                    return Err(unprocessable(format!(
                        "spec.clusterIP: {ip} is already allocated to another Service"
                    )));
                }
                ips.insert(ip);
            }
            (None, None) => {
                let cidr = s.discovery.service_cidr;
                let ip = crate::discovery::allocate_cluster_ip(
                    &cidr,
                    &s.store.cluster_id().unwrap_or_default(),
                    &key.namespace,
                    &key.name,
                    ips,
                )
                .ok_or_else(|| {
                    unprocessable(format!(
                        "spec.clusterIP: no free address left in {}",
                        s.discovery.service_cidr
                    ))
                })?;
                ips.insert(ip);
                spec.cluster_ip = Some(ip.to_string());
            }
        }
        let exposed = matches!(
            spec.service_type,
            Some(ServiceType::NodePort | ServiceType::LoadBalancer)
        );
        if exposed {
            let range = crate::discovery::parse_port_range(&s.discovery.node_port_range)
                .map_err(|e| unprocessable(format!("discovery.node_port_range: {e}")))?;
            for (i, p) in spec.ports.iter_mut().enumerate() {
                if let Some(np) = p.node_port {
                    if !(range.0..=range.1).contains(&np) {
                        return Err(unprocessable(format!(
                            "spec.ports[{i}].nodePort: {np} is outside the cluster's node port range {} (discovery.node_port_range)",
                            s.discovery.node_port_range
                        )));
                    }
                    continue;
                }
                let kept = live.as_ref().and_then(|l| {
                    l.spec
                        .ports
                        .iter()
                        .find(|lp| lp.port == p.port && lp.name == p.name)
                        .and_then(|lp| lp.node_port)
                });
                let np = match kept {
                    Some(np) => np,
                    None => {
                        let seed = format!("{}/{}/{}", key.namespace, key.name, p.port);
                        crate::discovery::allocate_node_port(range, &seed, ports).ok_or_else(
                            || {
                                unprocessable(format!(
                                    "spec.ports[{i}].nodePort: no free port left in {}",
                                    s.discovery.node_port_range
                                ))
                            },
                        )?
                    }
                };
                ports.insert(np);
                p.node_port = Some(np);
            }
        }
        let spec = serde_json::to_value(&body.spec)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        obj.body.insert("spec".into(), spec);
        Ok(())
    }
}
