//! The requests this node is serving right now (`sys/in-flight-req`).
//!
//! The HTTP layer enters every request it decoded with
//! [`InFlightRequests::enter`] and keeps the returned [`InFlightGuard`] for
//! as long as it works on it; dropping the guard (the answer was written,
//! or the client went away and the handler's future was dropped) removes
//! the entry. Core adds the caller's entity id once the token is resolved.
//!
//! Invariants: an entry lives exactly as long as its guard; the registry
//! holds no request body, token or query string, only the method, the path,
//! the remote address and the start time (as Vault shows them).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde_json::{json, Map, Value};

/// One request being served.
#[derive(Debug, Clone)]
pub struct InFlightEntry {
    pub start_time: DateTime<Utc>,
    /// `ip:port` of the client, empty when unknown.
    pub client_remote_address: String,
    /// The URL path as the client sent it (`/v1/sys/in-flight-req`), without
    /// the query string.
    pub request_path: String,
    /// The HTTP method (`GET`, `PUT`, `LIST`, ...).
    pub request_method: String,
    /// The entity of the calling token, once known (empty otherwise).
    pub client_id: String,
}

impl InFlightEntry {
    /// A request starting now, whose caller is not known yet.
    pub fn starting_now(
        client_remote_address: String,
        request_path: String,
        request_method: String,
    ) -> Self {
        InFlightEntry {
            start_time: Utc::now(),
            client_remote_address,
            request_path,
            request_method,
            client_id: String::new(),
        }
    }
}

/// Every request in flight on this node, by request id.
#[derive(Debug, Default)]
pub struct InFlightRequests {
    entries: Mutex<HashMap<String, InFlightEntry>>,
}

/// Removes its request from the registry when dropped.
#[must_use = "the request leaves the registry when the guard is dropped"]
pub struct InFlightGuard {
    registry: Arc<InFlightRequests>,
    id: String,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.registry.entries.lock().remove(&self.id);
    }
}

impl InFlightRequests {
    /// Records a request until the guard is dropped. `id` is the request's
    /// own id (a fresh UUID per request).
    pub fn enter(self: &Arc<Self>, id: String, entry: InFlightEntry) -> InFlightGuard {
        self.entries.lock().insert(id.clone(), entry);
        InFlightGuard {
            registry: self.clone(),
            id,
        }
    }

    /// Notes who sent a request (its token's entity).
    pub(crate) fn set_client_id(&self, id: &str, client_id: &str) {
        if client_id.is_empty() {
            return;
        }
        if let Some(e) = self.entries.lock().get_mut(id) {
            e.client_id = client_id.to_string();
        }
    }

    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Vault's shape: request id → {start_time, client_remote_address,
    /// request_path, request_method, client_id}.
    pub fn snapshot(&self) -> Map<String, Value> {
        self.entries
            .lock()
            .iter()
            .map(|(id, e)| {
                (
                    id.clone(),
                    json!({
                        "start_time": e.start_time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                        "client_remote_address": e.client_remote_address,
                        "request_path": e.request_path,
                        "request_method": e.request_method,
                        "client_id": e.client_id,
                    }),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> InFlightEntry {
        InFlightEntry {
            start_time: Utc::now(),
            client_remote_address: "127.0.0.1:4000".into(),
            request_path: path.into(),
            request_method: "GET".into(),
            client_id: String::new(),
        }
    }

    #[test]
    fn an_entry_lives_as_long_as_its_guard() {
        let r = Arc::new(InFlightRequests::default());
        let a = r.enter("a".into(), entry("/v1/a"));
        let b = r.enter("b".into(), entry("/v1/b"));
        r.set_client_id("b", "entity-1");
        let snap = r.snapshot();
        assert_eq!(snap.len(), 2);
        assert_eq!(snap["a"]["request_path"], "/v1/a");
        assert_eq!(snap["b"]["client_id"], "entity-1");
        assert_eq!(snap["a"]["client_id"], "");
        drop(a);
        assert_eq!(r.snapshot().keys().collect::<Vec<_>>(), vec!["b"]);
        drop(b);
        assert!(r.is_empty());
    }

    #[test]
    fn a_dropped_future_leaves_the_registry() {
        let r = Arc::new(InFlightRequests::default());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let reg = r.clone();
        let fut = async move {
            let _g = reg.enter("slow".into(), entry("/v1/slow"));
            futures::future::pending::<()>().await;
        };
        rt.block_on(async {
            let h = tokio::spawn(fut);
            while r.is_empty() {
                tokio::task::yield_now().await;
            }
            h.abort();
            let _ = h.await;
        });
        assert!(r.is_empty());
    }
}
