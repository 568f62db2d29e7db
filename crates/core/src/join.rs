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
//! The answer is HMAC-SHA256 over the node's id and the nonce, keyed by a
//! key derived from the root key — which only a holder of the unseal key
//! can recover. The leader keeps each nonce for 30 minutes, uses it once,
//! and compares answers in constant time.

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
const PURPOSE: &str = "arca raft join v1";

fn answer_mac(key: &[u8], server_id: &str, nonce: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(server_id.as_bytes());
    m.update(&[0]);
    m.update(nonce);
    m.finalize().into_bytes().to_vec()
}

/// TLS material to reach the leader's API (PEM text, as Vault's fields).
#[derive(Debug, Clone, Default)]
pub struct JoinTls {
    pub ca_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
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
    b.build()
        .map_err(|e| LogicalError::internal(format!("cannot build an HTTP client: {e}")))
}

/// PUT `{leader}/v1/{path}` with a JSON body; returns the response's `data`.
async fn call_leader(req: &JoinRequest, path: &str, body: Value) -> Result<Value, String> {
    let client = http_client(&req.tls).map_err(|e| e.to_string())?;
    let url = format!("{}/v1/{path}", req.leader_api_addr.trim_end_matches('/'));
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
    match (n, t) {
        (Some(n), Some(t)) => Ok(SealConfig::shamir(n as usize, t as usize)),
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
        let nonce: [u8; 32] = rand::random();
        {
            let mut pending = self.join_nonces.lock();
            pending.retain(|_, (_, t)| t.elapsed() < NONCE_TTL);
            pending.insert(server_id.to_string(), (nonce, Instant::now()));
        }
        let challenge = json!({
            "v": 1,
            "root_key_record": B64.encode(&record),
            "nonce": B64.encode(nonce),
        });
        let seal_config = json!({
            "type": "shamir",
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
        server_id: &str,
        answer: &[u8],
    ) -> Result<(), LogicalError> {
        let (nonce, issued) = self.join_nonces.lock().remove(server_id).ok_or_else(|| {
            LogicalError::invalid("no pending challenge for this server id; start the join again")
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
        let expected = answer_mac(key.as_slice(), server_id, &nonce);
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
        http_client(&req.tls)?;
        if req.retry {
            let weak = self.self_weak.clone();
            tokio::spawn(async move {
                loop {
                    let Some(core) = weak.upgrade() else { return };
                    if core.pending_join.lock().is_some()
                        || core.initialized().await.unwrap_or(false)
                    {
                        return;
                    }
                    match core.fetch_challenge(&req).await {
                        Ok(()) => return,
                        Err(e) => tracing::warn!("raft join: {e}; retrying in 2s"),
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
        tracing::info!(leader = %req.leader_api_addr, "raft join: challenge received; unseal this node with the cluster's key shares to finish joining");
        *self.pending_join.lock() = Some(PendingJoin {
            req: req.clone(),
            challenge,
            seal_config,
        });
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

    /// Finishes a join with the combined unseal key: answers the challenge,
    /// waits for the data to arrive, then unseals.
    pub(crate) async fn finish_join(&self, unseal_key: &[u8]) -> Result<(), LogicalError> {
        let p = self
            .pending_join
            .lock()
            .clone()
            .ok_or_else(|| LogicalError::invalid("Vault is not initialized"))?;
        let me = self.cluster_or_400()?.state().this;
        let answer = answer_challenge(&p.challenge, unseal_key, &me.node_id)?;
        call_leader(
            &p.req,
            "sys/storage/raft/bootstrap/answer",
            json!({
                "server_id": me.node_id,
                "answer": B64.encode(answer),
                "cluster_addr": me.cluster_addr,
                "api_addr": me.api_addr,
                "non_voter": p.req.non_voter,
            }),
        )
        .await
        .map_err(|e| LogicalError::Status {
            status: 500,
            message: format!("failed to join raft cluster: {e}"),
        })?;
        *self.pending_join.lock() = None;
        // The leader returns once this node caught up; the keyring is here
        // or arrives within moments.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.initialized().await? {
            if Instant::now() > deadline {
                return Err(LogicalError::internal(
                    "joined the cluster, but its data did not arrive within 60s; unseal again once it has",
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.unseal_with_key(unseal_key).await
    }
}

/// The joining node's answer: recovers the root key from the record with
/// the unseal key, then MACs the nonce.
fn answer_challenge(
    challenge: &str,
    unseal_key: &[u8],
    server_id: &str,
) -> Result<Vec<u8>, LogicalError> {
    let bad = || LogicalError::internal("the leader's join challenge is malformed");
    let raw = B64.decode(challenge.trim()).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let field = |name: &str| -> Result<Vec<u8>, LogicalError> {
        B64.decode(v.get(name).and_then(|x| x.as_str()).ok_or_else(bad)?)
            .map_err(|_| bad())
    };
    let record = field("root_key_record")?;
    let nonce = field("nonce")?;
    let root = arca_seal::Seal::open_root_key_record(&record, unseal_key).map_err(|_| {
        LogicalError::invalid(
            "Unseal failed, invalid key: the shares do not combine to the cluster's unseal key",
        )
    })?;
    let key = root.derive(PURPOSE);
    Ok(answer_mac(key.as_slice(), server_id, &nonce))
}
