//! Raft and HA endpoints: `sys/storage/raft/configuration`, `remove-peer`,
//! `bootstrap/challenge` and `bootstrap/answer` (the leader's half of a
//! join; the joining node's half is `sys/storage/raft/join`, which runs
//! while sealed, in `seal_ops`), `sys/step-down` and `sys/ha-status`.
//!
//! Membership changes and the join handshake run on the active node: on a
//! standby these handlers answer `ReadOnly`, so the request is forwarded.

use base64::Engine;
use serde_json::{json, Map, Value};

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use super::{legacy, Sys};
use crate::cluster::{Cluster, ClusterError, ClusterMember};
use crate::core::Core;

/// `host:port` of a URL (Vault shows cluster addresses without a scheme).
pub(crate) fn host_port(addr: &str) -> String {
    let s = addr.split_once("://").map(|(_, r)| r).unwrap_or(addr);
    s.trim_end_matches('/').to_string()
}

pub(crate) fn cluster_error(e: ClusterError) -> LogicalError {
    match e {
        ClusterError::NotActive => LogicalError::ReadOnly,
        ClusterError::NoLeader => LogicalError::Status {
            status: 503,
            message: e.to_string(),
        },
        ClusterError::Invalid(m) => LogicalError::invalid(m),
        ClusterError::Failed(m) => LogicalError::internal(m),
    }
}

impl Core {
    pub(crate) fn cluster_or_400(&self) -> Result<&dyn Cluster, LogicalError> {
        self.cluster()
            .ok_or_else(|| LogicalError::invalid("raft storage is not in use"))
    }

    fn require_active_cluster(&self) -> Result<&dyn Cluster, LogicalError> {
        let c = self.cluster_or_400()?;
        if !c.state().is_active {
            return Err(LogicalError::ReadOnly);
        }
        Ok(c)
    }
}

fn server_id(c: &Ctx<'_>) -> Result<String, LogicalError> {
    match c.data.get_str("server_id")? {
        Some(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        _ => Err(LogicalError::invalid("no server id provided")),
    }
}

impl Sys {
    async fn raft_configuration(&self, _c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let cl = core.cluster_or_400()?;
        let st = cl.state();
        let servers: Vec<Value> = cl
            .members()
            .into_iter()
            .map(|m| {
                json!({
                    "node_id": m.node_id,
                    "address": host_port(&m.cluster_addr),
                    "leader": m.leader,
                    "protocol_version": "3",
                    "voter": m.voter,
                })
            })
            .collect();
        let mut data = Map::new();
        data.insert(
            "config".into(),
            json!({ "index": st.committed_index, "servers": servers }),
        );
        Ok(Some(Response::data(data)))
    }

    async fn raft_remove_peer(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let id = server_id(&c)?;
        let cl = core.require_active_cluster()?;
        cl.remove_member(&id).await.map_err(cluster_error)?;
        Ok(None)
    }

    async fn raft_challenge(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let id = server_id(&c)?;
        core.require_active_cluster()?;
        let (challenge, seal_config) = core.join_challenge(&id).await?;
        let mut data = Map::new();
        data.insert("challenge".into(), Value::from(challenge));
        data.insert("seal_config".into(), seal_config);
        Ok(Some(Response::data(data)))
    }

    async fn raft_answer(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let id = server_id(&c)?;
        let cl = core.require_active_cluster()?;
        let answer = c.data.get_str("answer")?.unwrap_or_default();
        let answer = base64::engine::general_purpose::STANDARD
            .decode(answer.trim())
            .map_err(|_| LogicalError::invalid("answer must be base64"))?;
        let cluster_addr = c
            .data
            .get_str("cluster_addr")?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| LogicalError::invalid("cluster_addr is required"))?;
        let api_addr = c.data.get_str("api_addr")?.unwrap_or_default();
        let non_voter = c.data.bool_or("non_voter", false)?;
        let csr = c.data.get_str("csr")?.unwrap_or_default();
        if csr.len() > crate::join::MAX_CSR {
            return Err(LogicalError::invalid(format!(
                "csr is longer than {} bytes",
                crate::join::MAX_CSR
            )));
        }
        core.check_join_answer(
            &crate::join::JoinClaim {
                server_id: &id,
                cluster_addr: &cluster_addr,
                api_addr: &api_addr,
                non_voter,
                csr: &csr,
            },
            &answer,
        )?;
        let cluster_addr = if cluster_addr.contains("://") {
            cluster_addr
        } else {
            // Vault sends host:port; the cluster port always speaks TLS.
            format!("https://{cluster_addr}")
        };
        // The certificate is issued before the node is added: a request
        // that cannot get one changes nothing.
        let cluster_tls = if cl.managed_identity() {
            if csr.is_empty() {
                return Err(LogicalError::invalid(
                    "this cluster issues the certificates of its cluster port itself: the joining node must not be configured with cluster_cert_file, cluster_key_file and cluster_ca_file",
                ));
            }
            let ca = core.cluster_ca().await?.ok_or_else(|| {
                LogicalError::internal("this cluster has no CA for its cluster port")
            })?;
            let cert = ca
                .issue_for_csr(&csr, &id, &cluster_addr)
                .map_err(|e| LogicalError::invalid(e.to_string()))?;
            json!({ "certificate": cert, "ca_certificate": ca.ca_cert_pem })
        } else {
            if !csr.is_empty() {
                return Err(LogicalError::invalid(
                    "this cluster uses operator-supplied cluster certificates: configure the joining node with cluster_cert_file, cluster_key_file and cluster_ca_file",
                ));
            }
            Value::Null
        };
        cl.add_member(ClusterMember {
            node_id: id,
            api_addr,
            cluster_addr,
            voter: !non_voter,
            leader: false,
        })
        .await
        .map_err(cluster_error)?;
        let peers: Vec<Value> = cl
            .members()
            .into_iter()
            .map(|m| {
                json!({
                    "id": m.node_id,
                    "address": host_port(&m.cluster_addr),
                    "suffrage": if m.voter { 0 } else { 1 },
                })
            })
            .collect();
        let mut data = Map::new();
        data.insert("peers".into(), Value::from(peers));
        data.insert("tls_keyring".into(), Value::Null);
        data.insert("cluster_tls".into(), cluster_tls);
        Ok(Some(Response::data(data)))
    }

    async fn step_down(&self, _c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let Some(cl) = core.cluster() else {
            // Vault: a no-op without HA.
            return Ok(None);
        };
        if !cl.state().is_active {
            return Err(LogicalError::ReadOnly);
        }
        if let Err(e) = core.barrier.flush_usage().await {
            tracing::debug!("step-down: encryption count not flushed: {e}");
        }
        cl.step_down().await.map_err(cluster_error)?;
        Ok(None)
    }

    async fn ha_status(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let Some(cl) = core.cluster() else {
            // Single-node storage: this node is the whole cluster and active
            // (as Vault answers without HA storage).
            let mut data = Map::new();
            data.insert(
                "nodes".into(),
                json!([{
                    "hostname": super::path_host::hostname(),
                    "api_address": core.config.api_addr,
                    "cluster_address": "",
                    "active_node": true,
                    "last_echo": Value::Null,
                    "version": crate::seal_ops::VERSION,
                }]),
            );
            return Ok(Some(legacy(c.req, data)));
        };
        let mut members = cl.members();
        // The active node first, as Vault lists it.
        members.sort_by(|a, b| b.leader.cmp(&a.leader).then(a.node_id.cmp(&b.node_id)));
        let nodes: Vec<Value> = members
            .into_iter()
            .map(|m| {
                json!({
                    "hostname": m.node_id,
                    "api_address": m.api_addr,
                    "cluster_address": m.cluster_addr,
                    "active_node": m.leader,
                    "last_echo": Value::Null,
                    "version": crate::seal_ops::VERSION,
                    "voter": m.voter,
                })
            })
            .collect();
        let mut data = Map::new();
        data.insert("nodes".into(), Value::from(nodes));
        Ok(Some(legacy(c.req, data)))
    }
}

pub(super) fn paths() -> Vec<Path<Sys>> {
    let sid = || Field::new("server_id", FieldType::String, "The node_id of the peer.");
    vec![
        Path::new("storage/raft/configuration")
            .op(Operation::Read, |b: &Sys, c| {
                Box::pin(b.raft_configuration(c))
            })
            .help("The raft cluster's members: node_id, cluster address, leader, voter."),
        Path::new("storage/raft/remove-peer")
            .field(sid())
            .op(Operation::Update, |b: &Sys, c| {
                Box::pin(b.raft_remove_peer(c))
            })
            .help("Remove a peer from the raft cluster (runs on the active node)."),
        Path::new("storage/raft/bootstrap/challenge")
            .field(sid())
            .op(Operation::Update, |b: &Sys, c| {
                Box::pin(b.raft_challenge(c))
            })
            .help("First step of a join: a challenge only a holder of the unseal keys can answer."),
        Path::new("storage/raft/bootstrap/answer")
            .field(sid())
            .field(Field::new(
                "answer",
                FieldType::String,
                "The decrypted challenge, base64.",
            ))
            .field(Field::new(
                "cluster_addr",
                FieldType::String,
                "The joining node's cluster address.",
            ))
            .field(Field::new(
                "api_addr",
                FieldType::String,
                "The joining node's API address.",
            ))
            .field(Field::new(
                "non_voter",
                FieldType::Bool,
                "Join as a non-voting member.",
            ))
            .field(Field::new(
                "csr",
                FieldType::String,
                "PEM request for the joining node's cluster-port certificate (covered by the answer).",
            ))
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.raft_answer(c)))
            .help("Second step of a join: a correct answer adds the node to the cluster."),
        Path::new("step-down")
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.step_down(c)))
            .help("The active node hands leadership to another voter."),
        Path::new("ha-status")
            .op(Operation::Read, |b: &Sys, c| Box::pin(b.ha_status(c)))
            .help("Every node of the HA cluster, the active one first."),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_strips_the_scheme() {
        assert_eq!(host_port("https://10.0.0.1:8201"), "10.0.0.1:8201");
        assert_eq!(host_port("10.0.0.1:8201"), "10.0.0.1:8201");
        assert_eq!(host_port("http://n1:8201/"), "n1:8201");
    }
}
