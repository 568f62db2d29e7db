//! Test harness: a KV v2 engine on `InmemStorage` with a hand-driven clock,
//! and storage wrappers that refuse writes.

use std::sync::{Arc, Mutex};

use arca_sdk::testing::InmemStorage;
use arca_sdk::{
    Backend, Framework, HandlerResult, LogicalError, Operation, Request, Response, Storage,
    StorageError, StorageOp,
};
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

use crate::backend::{kv_v2_with, KvV2};

#[derive(Clone)]
pub(crate) struct FakeClock(Arc<Mutex<DateTime<Utc>>>);

impl FakeClock {
    pub fn new() -> Self {
        let start = Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9).unwrap()
            + chrono::Duration::nanoseconds(123_456_780);
        FakeClock(Arc::new(Mutex::new(start)))
    }
    pub fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
    pub fn advance(&self, secs: i64) {
        *self.0.lock().unwrap() += chrono::Duration::seconds(secs);
    }
}

pub(crate) struct V2 {
    pub backend: Framework<KvV2>,
    pub storage: InmemStorage,
    pub clock: FakeClock,
}

impl V2 {
    pub fn new() -> Self {
        let clock = FakeClock::new();
        let c = clock.clone();
        V2 {
            backend: kv_v2_with(KvV2::with_clock(Arc::new(move || c.now()))),
            storage: InmemStorage::new(),
            clock,
        }
    }

    /// Like core: an update whose existence check says "absent" becomes a create.
    pub async fn call_on(
        &self,
        s: &dyn Storage,
        op: Operation,
        path: &str,
        data: Value,
    ) -> HandlerResult {
        let mut req = Request::new(op, path).with_data(data);
        if op == Operation::Update && self.backend.existence(&req, s).await? == Some(false) {
            req.operation = Operation::Create;
        }
        self.backend.handle(&req, s).await
    }

    pub async fn call(&self, op: Operation, path: &str, data: Value) -> HandlerResult {
        self.call_on(&self.storage, op, path, data).await
    }

    pub async fn ok(&self, op: Operation, path: &str, data: Value) -> Option<Response> {
        self.call(op, path, data)
            .await
            .unwrap_or_else(|e| panic!("{op:?} {path}: {e:?}"))
    }

    pub async fn err(&self, op: Operation, path: &str, data: Value) -> LogicalError {
        match self.call(op, path, data).await {
            Err(e) => e,
            Ok(r) => panic!("{op:?} {path}: expected an error, got {r:?}"),
        }
    }

    pub async fn write(&self, path: &str, data: Value) -> Option<Response> {
        self.ok(Operation::Update, path, data).await
    }

    /// A read or list that must answer with a body.
    pub async fn get(&self, op: Operation, path: &str, data: Value) -> Response {
        self.ok(op, path, data)
            .await
            .unwrap_or_else(|| panic!("{op:?} {path}: no response"))
    }
}

/// The response body as JSON.
pub(crate) fn body(r: &Response) -> Value {
    Value::Object(r.data.clone().unwrap_or_default())
}

/// A storage whose writes all fail, like a standby's.
pub(crate) struct ReadOnly<'a>(pub &'a InmemStorage);

#[async_trait]
impl Storage for ReadOnly<'_> {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.0.get(key).await
    }
    async fn put(&self, _: &str, _: Vec<u8>) -> Result<(), StorageError> {
        Err(StorageError::ReadOnly)
    }
    async fn delete(&self, _: &str) -> Result<(), StorageError> {
        Err(StorageError::ReadOnly)
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.0.list(prefix).await
    }
    async fn batch(&self, _: Vec<StorageOp>) -> Result<(), StorageError> {
        Err(StorageError::ReadOnly)
    }
}

/// A storage whose batches fail but whose single writes succeed: a handler
/// that wrote in several steps would leave half a write behind.
pub(crate) struct BatchFails<'a>(pub &'a InmemStorage);

#[async_trait]
impl Storage for BatchFails<'_> {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.0.get(key).await
    }
    async fn put(&self, key: &str, v: Vec<u8>) -> Result<(), StorageError> {
        self.0.put(key, v).await
    }
    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.0.delete(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.0.list(prefix).await
    }
    async fn batch(&self, _: Vec<StorageOp>) -> Result<(), StorageError> {
        Err(StorageError::Backend("injected batch failure".into()))
    }
}

/// A snapshot of every key and value, to compare before and after.
pub(crate) async fn snapshot(s: &InmemStorage) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for k in s.keys() {
        let v = s.get(&k).await.unwrap().unwrap();
        out.push((k, v));
    }
    out
}
