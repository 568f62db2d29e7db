//! Joining a raft cluster, both halves.
//!
//! The joining node (uninitialized, sealed) is asked to join with
//! `sys/storage/raft/join`. It fetches a challenge from the leader
//! (`sys/storage/raft/bootstrap/challenge`) and then reports itself
//! initialized with the cluster's seal configuration, so operators unseal
//! it with the cluster's key shares as usual. When the shares combine, the
//! node answers the challenge (`bootstrap/answer`); the leader admits it,
//! Raft replicates the data (by snapshot when far behind), and the node
//! unseals with the same key.
//!
//! The challenge proves possession of the unseal key without revealing
//! anything: it carries the stored root-key record (encrypted under the
//! unseal key, and replicated to every member anyway) and a fresh nonce.
//! The answer is HMAC-SHA256 over the node's id, the cluster and API
//! addresses it asks to be added with, its voter flag, the CSR for its
//! cluster-port certificate and the nonce, keyed by a key derived from the
//! root key — which only a holder of the unseal key can recover. So an
//! answer cannot be relayed to admit another address or another key. The
//! leader answers with the node's certificate, issued by the cluster CA
//! (`crate::cluster_tls`), and the CA certificate: the node can then reach
//! its peers, which refuse anyone without such a certificate. The leader keeps each nonce for 30 minutes, uses it once, and
//! compares answers in constant time.
//!
//! Limits (the challenge endpoint needs no token): server ids of at most
//! [`MAX_SERVER_ID`] bytes, at most [`MAX_PENDING_CHALLENGES`] outstanding
//! challenges on the leader; on the joining side one pending join, which a
//! later join request cannot replace, and one retry task at a time.

use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use arca_sdk::LogicalError;
use arca_seal::SealConfig;

use crate::core::Core;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const NONCE_TTL: Duration = Duration::from_secs(30 * 60);
const PURPOSE: &str = "arca raft join v3";
/// Longest accepted `server_id`, in bytes.
pub const MAX_SERVER_ID: usize = 128;
/// Longest accepted CSR in a join answer, in bytes.
pub const MAX_CSR: usize = 8192;
/// Most challenges the leader keeps outstanding at once.
pub const MAX_PENDING_CHALLENGES: usize = 64;

/// What a join answer asks the leader to do; every field is under the MAC.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JoinClaim<'a> {
    pub server_id: &'a str,
    pub cluster_addr: &'a str,
    pub api_addr: &'a str,
    pub non_voter: bool,
    /// The CSR for the node's cluster-port certificate (empty when the
    /// cluster uses operator-supplied certificates).
    pub csr: &'a str,
}

fn answer_mac(key: &[u8], claim: &JoinClaim<'_>, nonce: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    // Length-prefixed fields: no two claims encode the same bytes.
    for f in [
        claim.server_id,
        claim.cluster_addr,
        claim.api_addr,
        claim.csr,
    ] {
        m.update(&(f.len() as u64).to_be_bytes());
        m.update(f.as_bytes());
    }
    m.update(&[claim.non_voter as u8]);
    m.update(nonce);
    m.finalize().into_bytes().to_vec()
}

/// A server id the leader accepts: non-empty, short, printable.
pub fn check_server_id(id: &str) -> Result<(), LogicalError> {
    if id.is_empty() || id.len() > MAX_SERVER_ID || id.chars().any(|c| c.is_control()) {
        return Err(LogicalError::invalid(format!(
            "server_id must be 1 to {MAX_SERVER_ID} printable bytes"
        )));
    }
    Ok(())
}

/// TLS material to reach the leader's API (PEM text, as Vault's fields).
#[derive(Debug, Clone, Default)]
pub struct JoinTls {
    pub ca_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
    /// `leader_tls_servername`: the name the leader's certificate must
    /// carry, when it differs from the host in `leader_api_addr`.
    pub server_name: String,
}

#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub leader_api_addr: String,
    pub tls: JoinTls,
    pub retry: bool,
    pub non_voter: bool,
}

/// A challenge received, waiting for the unseal key.
#[derive(Clone)]
pub(crate) struct PendingJoin {
    pub req: JoinRequest,
    pub challenge: String,
    pub seal_config: SealConfig,
}

fn http_client(tls: &JoinTls) -> Result<reqwest::Client, LogicalError> {
    client_builder(tls)?
        .build()
        .map_err(|e| LogicalError::internal(format!("cannot build an HTTP client: {e}")))
}

fn client_builder(tls: &JoinTls) -> Result<reqwest::ClientBuilder, LogicalError> {
    let mut b = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .connect_timeout(Duration::from_secs(5));
    if !tls.ca_pem.trim().is_empty() {
        let ca = reqwest::Certificate::from_pem(tls.ca_pem.as_bytes()).map_err(|e| {
            LogicalError::invalid(format!("leader_ca_cert is not a PEM certificate: {e}"))
        })?;
        b = b.add_root_certificate(ca);
    }
    if !tls.client_cert_pem.trim().is_empty() {
        let pem = format!("{}\n{}", tls.client_cert_pem, tls.client_key_pem);
        let id = reqwest::Identity::from_pem(pem.as_bytes()).map_err(|e| {
            LogicalError::invalid(format!("leader_client_cert/leader_client_key: {e}"))
        })?;
        b = b.identity(id);
    }
    Ok(b)
}

/// The URL to call and the client to call it with. With a server name,
/// the URL names that host (so TLS checks the certificate against it) and
/// the client resolves it to the address of `leader_api_addr`.
async fn leader_endpoint(
    req: &JoinRequest,
    path: &str,
) -> Result<(reqwest::Client, String), String> {
    let base = req.leader_api_addr.trim_end_matches('/');
    let name = req.tls.server_name.trim();
    if name.is_empty() {
        let client = http_client(&req.tls).map_err(|e| e.to_string())?;
        return Ok((client, format!("{base}/v1/{path}")));
    }
    let mut url = reqwest::Url::parse(base)
        .map_err(|e| format!("leader_api_addr {base:?} is not a URL: {e}"))?;
    let host = url
        .host_str()
        .ok_or_else(|| format!("leader_api_addr {base:?} names no host"))?
        .trim_matches(|c| c == '[' || c == ']')
        .to_string();
    let port = url.port_or_known_default().unwrap_or(8200);
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    url.set_host(Some(name))
        .map_err(|e| format!("leader_tls_servername {name:?} is not a host name: {e}"))?;
    let client = client_builder(&req.tls)
        .map_err(|e| e.to_string())?
        .resolve_to_addrs(name, &addrs)
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    Ok((
        client,
        format!("{}/v1/{path}", url.as_str().trim_end_matches('/')),
    ))
}

/// PUT `{leader}/v1/{path}` with a JSON body; returns the response's `data`.
async fn call_leader(req: &JoinRequest, path: &str, body: Value) -> Result<Value, String> {
    let (client, url) = leader_endpoint(req, path).await?;
    let resp = client
        .put(&url)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("cannot reach the leader at {url}: {e}"))?;
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let errs = v
            .get("errors")
            .map(|e| e.to_string())
            .unwrap_or_else(|| "no error details".into());
        return Err(format!("{url} answered {status}: {errs}"));
    }
    Ok(v.get("data").cloned().unwrap_or(Value::Null))
}

fn parse_seal_config(v: &Value) -> Result<SealConfig, String> {
    let n = v.get("secret_shares").and_then(|x| x.as_u64());
    let t = v.get("secret_threshold").and_then(|x| x.as_u64());
    let kind = v.get("type").and_then(|x| x.as_str()).unwrap_or("shamir");
    match (n, t) {
        (Some(n), Some(t)) => Ok(SealConfig {
            seal_type: kind.to_string(),
            ..SealConfig::shamir(n as usize, t as usize)
        }),
        _ => Err("the leader sent no usable seal configuration".into()),
    }
}

impl Core {
    // ----- leader side -----

    /// A fresh challenge for `server_id` and the seal configuration.
    pub(crate) async fn join_challenge(
        &self,
        server_id: &str,
    ) -> Result<(String, Value), LogicalError> {
        let record = self
            .seal
            .root_key_record()
            .await
            .map_err(|e| LogicalError::internal(e.to_string()))?
            .ok_or_else(|| LogicalError::internal("the root key record is missing"))?;
        let cfg = self
            .seal
            .config()
            .await
            .map_err(|e| LogicalError::internal(e.to_string()))?
            .ok_or_else(|| LogicalError::internal("the seal configuration is missing"))?;
        check_server_id(server_id)?;
        let nonce: [u8; 32] = rand::random();
        {
            let mut pending = self.join_nonces.lock();
            pending.retain(|_, (_, t)| t.elapsed() < NONCE_TTL);
            if pending.len() >= MAX_PENDING_CHALLENGES && !pending.contains_key(server_id) {
                return Err(LogicalError::Status {
                    status: 503,
                    message: format!(
                        "{MAX_PENDING_CHALLENGES} joins are already in progress; finish or let them expire (30 minutes), then retry"
                    ),
                });
            }
            pending.insert(server_id.to_string(), (nonce, Instant::now()));
        }
        let challenge = json!({
            "v": 1,
            "root_key_record": B64.encode(&record),
            "nonce": B64.encode(nonce),
        });
        let seal_config = json!({
            "type": cfg.seal_type,
            "secret_shares": cfg.secret_shares,
            "secret_threshold": cfg.secret_threshold,
            "pgp_keys": null,
            "nonce": "",
            "backup": false,
        });
        Ok((B64.encode(challenge.to_string()), seal_config))
    }

    /// Checks (once) the answer a joining node gives.
    pub(crate) fn check_join_answer(
        &self,
        claim: &JoinClaim<'_>,
        answer: &[u8],
    ) -> Result<(), LogicalError> {
        check_server_id(claim.server_id)?;
        let (nonce, issued) = self
            .join_nonces
            .lock()
            .remove(claim.server_id)
            .ok_or_else(|| {
                LogicalError::invalid(
                    "no pending challenge for this server id; start the join again",
                )
            })?;
        if issued.elapsed() >= NONCE_TTL {
            return Err(LogicalError::invalid(
                "the join challenge expired; start the join again",
            ));
        }
        let key = self
            .barrier
            .derive_key(PURPOSE)
            .map_err(|e| LogicalError::internal(e.to_string()))?;
        let expected = answer_mac(key.as_slice(), claim, &nonce);
        if !bool::from(expected.ct_eq(answer)) {
            return Err(LogicalError::invalid("invalid answer given"));
        }
        Ok(())
    }

    // ----- joining side -----

    /// `sys/storage/raft/join` on the joining node: `Ok(true)` when the
    /// challenge is in hand (or the node is already a member), `Ok(false)`
    /// when `retry` left it to a background task.
    pub async fn join(&self, req: JoinRequest) -> Result<bool, LogicalError> {
        let cl = self.cluster_or_400()?;
        if self.initialized().await? || cl.state().has_cluster {
            return Ok(true);
        }
        if !self.is_sealed() {
            return Err(LogicalError::invalid("node must be sealed before joining"));
        }
        if req.leader_api_addr.trim().is_empty() {
            return Err(LogicalError::invalid(
                "leader_api_addr is required (auto_join is not supported)",
            ));
        }
        if let Some(p) = self.pending_join.lock().as_ref() {
            return Err(LogicalError::invalid(format!(
                "a join to {} is already pending: unseal this node with the cluster's key shares to finish it, or restart the node to start over",
                p.req.leader_api_addr
            )));
        }
        http_client(&req.tls)?;
        if req.retry {
            if self
                .join_retrying
                .swap(true, std::sync::atomic::Ordering::AcqRel)
            {
                // One retry task at a time; the running one keeps trying.
                return Ok(false);
            }
            let weak = self.self_weak.clone();
            tokio::spawn(async move {
                loop {
                    let Some(core) = weak.upgrade() else { return };
                    let done = core.pending_join.lock().is_some()
                        || core.initialized().await.unwrap_or(false);
                    let done = done
                        || match core.fetch_challenge(&req).await {
                            Ok(()) => true,
                            Err(e) => {
                                tracing::warn!("raft join: {e}; retrying in 2s");
                                false
                            }
                        };
                    if done {
                        core.join_retrying
                            .store(false, std::sync::atomic::Ordering::Release);
                        return;
                    }
                    drop(core);
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            });
            return Ok(false);
        }
        self.fetch_challenge(&req)
            .await
            .map_err(|e| LogicalError::Status {
                status: 500,
                message: format!("failed to join raft cluster: {e}"),
            })?;
        Ok(true)
    }

    async fn fetch_challenge(&self, req: &JoinRequest) -> Result<(), String> {
        let me = self
            .cluster()
            .ok_or("raft storage is not in use")?
            .state()
            .this;
        let data = call_leader(
            req,
            "sys/storage/raft/bootstrap/challenge",
            json!({ "server_id": me.node_id }),
        )
        .await?;
        let challenge = data
            .get("challenge")
            .and_then(|c| c.as_str())
            .ok_or("the leader sent no challenge")?
            .to_string();
        let seal_config = parse_seal_config(data.get("seal_config").unwrap_or(&Value::Null))?;
        {
            let mut pending = self.pending_join.lock();
            if let Some(p) = pending.as_ref() {
                return Err(format!(
                    "a join to {} is already pending",
                    p.req.leader_api_addr
                ));
            }
            *pending = Some(PendingJoin {
                req: req.clone(),
                challenge,
                seal_config,
            });
        }
        if self.auto_seal().is_some() {
            tracing::info!(leader = %req.leader_api_addr, "raft join: challenge received; answering it with the auto seal");
            return self.finish_join(None).await.map_err(|e| e.to_string());
        }
        tracing::info!(leader = %req.leader_api_addr, "raft join: challenge received; unseal this node with the cluster's key shares to finish joining");
        Ok(())
    }

    /// Sets the configured `retry_join` targets; an unseal of an
    /// uninitialized node asks them for a challenge at once.
    pub fn set_retry_join(&self, targets: Vec<JoinRequest>) {
        *self.retry_join.lock() = targets;
    }

    /// Asks every `retry_join` target (this node excepted) for a challenge,
    /// until one answers. True when a join is now pending.
    pub async fn retry_join_once(&self) -> bool {
        let me = self.cluster().map(|c| c.state().this.api_addr);
        let targets = self.retry_join.lock().clone();
        for t in targets {
            if self.pending_join.lock().is_some() {
                return true;
            }
            if me.as_deref().map(|m| m.trim_end_matches('/'))
                == Some(t.leader_api_addr.trim_end_matches('/'))
            {
                continue;
            }
            match self.fetch_challenge(&t).await {
                Ok(()) => return true,
                Err(e) => tracing::debug!(leader = %t.leader_api_addr, "retry_join: {e}"),
            }
        }
        self.pending_join.lock().is_some()
    }

    /// The seal configuration a pending join reports before the node has
    /// the cluster's data.
    pub(crate) fn pending_join_config(&self) -> Option<SealConfig> {
        self.pending_join
            .lock()
            .as_ref()
            .map(|p| p.seal_config.clone())
    }

    /// Finishes a join with the combined unseal key (`None`: with the auto
    /// seal): answers the challenge, waits for the data to arrive, then
    /// unseals.
    pub(crate) async fn finish_join(&self, unseal_key: Option<&[u8]>) -> Result<(), LogicalError> {
        let p = self
            .pending_join
            .lock()
            .clone()
            .ok_or_else(|| LogicalError::invalid("Vault is not initialized"))?;
        let cl = self.cluster_or_400()?;
        let me = cl.state().this;
        let join_key = if cl.managed_identity() {
            Some(
                crate::cluster_tls::JoinKey::generate(&me.node_id)
                    .map_err(|e| LogicalError::internal(e.to_string()))?,
            )
        } else {
            None
        };
        let csr = join_key.as_ref().map(|k| k.csr_pem.as_str()).unwrap_or("");
        let claim = JoinClaim {
            server_id: &me.node_id,
            cluster_addr: &me.cluster_addr,
            api_addr: &me.api_addr,
            non_voter: p.req.non_voter,
            csr,
        };
        let (record, nonce) = challenge_parts(&p.challenge)?;
        let root = match unseal_key {
            Some(k) => arca_seal::Seal::open_root_key_record(&record, k).map_err(|_| {
                LogicalError::invalid(
                    "Unseal failed, invalid key: the shares do not combine to the cluster's unseal key",
                )
            })?,
            None => match self.open_record_auto(&record).await {
                Ok(r) => r,
                Err(e) => {
                    // Start over at the next attempt: the challenge is spent.
                    *self.pending_join.lock() = None;
                    return Err(e);
                }
            },
        };
        let answer = answer_mac(root.derive(PURPOSE).as_slice(), &claim, &nonce);
        let fail = |msg: String| {
            // The leader keeps a challenge for one answer only: drop this
            // one so the operator can start the join again.
            *self.pending_join.lock() = None;
            LogicalError::Status {
                status: 500,
                message: format!(
                    "failed to join raft cluster: {msg}; run the join again, then unseal"
                ),
            }
        };
        let reply = call_leader(
            &p.req,
            "sys/storage/raft/bootstrap/answer",
            json!({
                "server_id": me.node_id,
                "answer": B64.encode(answer),
                "cluster_addr": me.cluster_addr,
                "api_addr": me.api_addr,
                "non_voter": p.req.non_voter,
                "csr": csr,
            }),
        )
        .await
        .map_err(fail)?;
        if let Some(k) = &join_key {
            let field = |name: &str| {
                reply
                    .get("cluster_tls")
                    .and_then(|t| t.get(name))
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            };
            let (Some(cert), Some(ca)) = (field("certificate"), field("ca_certificate")) else {
                return Err(fail(
                    "the leader issued no cluster certificate (it uses operator-supplied cluster_cert_file certificates: configure this node with them too)".into(),
                ));
            };
            cl.set_identity(Some(k.identity(cert, ca)))
                .map_err(|e| fail(e.to_string()))?;
            // Replaced by one of its own from the replicated CA at unseal,
            // or at the first tick once the CA record has arrived.
            *self.cluster_cert_renew_at.lock() = Some(std::time::SystemTime::now());
        }
        *self.pending_join.lock() = None;
        // The leader has added this node; with its certificate installed,
        // the data (keyring first) arrives by replication.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.initialized().await? {
            if Instant::now() > deadline {
                return Err(LogicalError::internal(
                    "joined the cluster, but its data did not arrive within 60s; unseal again once it has",
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        match unseal_key {
            Some(k) => self.unseal_with_key(k).await?,
            None => {
                self.auto_unseal_once().await?;
            }
        }
        // The leader promotes a voter once it has caught up: the join is
        // complete, for the operator, when this node sees itself voting.
        if !p.req.non_voter {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !cl
                .members()
                .iter()
                .any(|m| m.node_id == me.node_id && m.voter)
            {
                if Instant::now() > deadline {
                    tracing::warn!("raft join: unsealed, but not yet promoted to voter after 60s; see the leader's log");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }
}

/// The root key record and the nonce of a leader's challenge; the joining
/// node opens the record and MACs the nonce with a key derived from the
/// root key.
fn challenge_parts(challenge: &str) -> Result<(Vec<u8>, Vec<u8>), LogicalError> {
    let bad = || LogicalError::internal("the leader's join challenge is malformed");
    let raw = B64.decode(challenge.trim()).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let field = |name: &str| -> Result<Vec<u8>, LogicalError> {
        B64.decode(v.get(name).and_then(|x| x.as_str()).ok_or_else(bad)?)
            .map_err(|_| bad())
    };
    Ok((field("root_key_record")?, field("nonce")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mac_binds_every_field_of_the_claim() {
        let key = [7u8; 32];
        let nonce = [1u8; 32];
        let base = JoinClaim {
            server_id: "n2",
            cluster_addr: "https://10.0.0.2:8201",
            api_addr: "https://10.0.0.2:8200",
            non_voter: false,
            csr: "-----BEGIN CERTIFICATE REQUEST-----",
        };
        let mac = answer_mac(&key, &base, &nonce);
        for other in [
            JoinClaim {
                server_id: "n3",
                ..base.clone()
            },
            JoinClaim {
                cluster_addr: "https://10.0.0.66:8201",
                ..base.clone()
            },
            JoinClaim {
                api_addr: "https://10.0.0.66:8200",
                ..base.clone()
            },
            JoinClaim {
                non_voter: true,
                ..base.clone()
            },
            JoinClaim {
                csr: "-----BEGIN CERTIFICATE REQUEST----- (another key)",
                ..base.clone()
            },
            // Moving bytes between fields changes the MAC too.
            JoinClaim {
                server_id: "n2https://10.0.0.2:8201",
                cluster_addr: "",
                ..base.clone()
            },
        ] {
            assert_ne!(answer_mac(&key, &other, &nonce), mac, "{other:?}");
        }
        assert_eq!(answer_mac(&key, &base, &nonce), mac);
    }

    #[test]
    fn server_ids_are_bounded() {
        assert!(check_server_id("node-1").is_ok());
        assert!(check_server_id("").is_err());
        assert!(check_server_id(&"x".repeat(MAX_SERVER_ID + 1)).is_err());
        assert!(check_server_id("a\nb").is_err());
    }
}
