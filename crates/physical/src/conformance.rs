//! The behaviour every [`PhysicalBackend`] must show, as a reusable suite.
//!
//! Each implementation's tests call [`run_all`] on a fresh, empty backend (the
//! in-memory one, RocksDB on a temporary directory, later Raft). Every check is
//! also public on its own. Checks panic with a message naming the property
//! that failed. Each check works under its own key prefix and deletes what it
//! wrote, so the backend is empty again after every check; [`empty_prefix`]
//! relies on that.
//!
//! Properties: overwrite, delete, delete of a missing key, listing order and
//! sub-folder collapsing (also for prefixes that end mid-segment), scan order,
//! ordered batches, all-or-nothing batches (a batch with an invalid key
//! applies nothing; a concurrent reader never sees half a batch), values of
//! several MiB, keys with spaces and unicode, the empty prefix, and the
//! rejection of the empty key.

use crate::{Op, PhysicalBackend, PhysicalError};

/// Runs every check. `backend` must be empty.
pub async fn run_all(backend: &dyn PhysicalBackend) {
    assert_eq!(
        backend.scan("").await.unwrap(),
        Vec::<String>::new(),
        "the conformance suite needs an empty backend"
    );
    put_get_overwrite(backend).await;
    delete(backend).await;
    delete_missing(backend).await;
    empty_key_rejected(backend).await;
    list_children(backend).await;
    list_partial_segment(backend).await;
    scan_order(backend).await;
    batch_in_order(backend).await;
    batch_all_or_nothing(backend).await;
    batch_atomic_visibility(backend).await;
    large_values(backend).await;
    unicode_and_space_keys(backend).await;
    empty_prefix(backend).await;
}

/// Deletes every key under `prefix` and checks none is left.
async fn cleanup(b: &dyn PhysicalBackend, prefix: &str) {
    let keys = b.scan(prefix).await.unwrap();
    b.batch(keys.into_iter().map(Op::Delete).collect())
        .await
        .unwrap();
    assert!(
        b.scan(prefix).await.unwrap().is_empty(),
        "cleanup of {prefix:?} left keys behind"
    );
}

async fn put_all(b: &dyn PhysicalBackend, prefix: &str, keys: &[&str]) {
    for k in keys {
        b.put(&format!("{prefix}{k}"), k.as_bytes().to_vec())
            .await
            .unwrap();
    }
}

pub async fn put_get_overwrite(b: &dyn PhysicalBackend) {
    let k = "overwrite/key";
    assert_eq!(b.get(k).await.unwrap(), None, "missing key reads as None");
    b.put(k, b"one".to_vec()).await.unwrap();
    assert_eq!(b.get(k).await.unwrap().as_deref(), Some(&b"one"[..]));
    b.put(k, b"two".to_vec()).await.unwrap();
    assert_eq!(
        b.get(k).await.unwrap().as_deref(),
        Some(&b"two"[..]),
        "overwrite replaces the value"
    );
    b.put(k, Vec::new()).await.unwrap();
    assert_eq!(
        b.get(k).await.unwrap().as_deref(),
        Some(&b""[..]),
        "an empty value is a value, not a deletion"
    );
    assert_eq!(b.scan("overwrite/").await.unwrap(), vec![k.to_string()]);
    cleanup(b, "overwrite/").await;
}

pub async fn delete(b: &dyn PhysicalBackend) {
    b.put("delete/a", vec![1]).await.unwrap();
    b.put("delete/b", vec![2]).await.unwrap();
    b.delete("delete/a").await.unwrap();
    assert_eq!(
        b.get("delete/a").await.unwrap(),
        None,
        "deleted key is gone"
    );
    assert_eq!(
        b.get("delete/b").await.unwrap(),
        Some(vec![2]),
        "delete touches one key"
    );
    assert_eq!(b.list("delete/").await.unwrap(), vec!["b".to_string()]);
    b.delete("delete/b").await.unwrap();
    assert_eq!(b.list("delete/").await.unwrap(), Vec::<String>::new());
    assert!(
        !b.list("").await.unwrap().contains(&"delete/".to_string()),
        "a folder whose keys are all deleted disappears"
    );
}

pub async fn delete_missing(b: &dyn PhysicalBackend) {
    b.delete("missing/never-written").await.unwrap();
    b.batch(vec![Op::Delete("missing/also-never-written".into())])
        .await
        .unwrap();
    assert_eq!(b.get("missing/never-written").await.unwrap(), None);
}

pub async fn empty_key_rejected(b: &dyn PhysicalBackend) {
    assert!(
        matches!(b.put("", vec![1]).await, Err(PhysicalError::InvalidKey(_))),
        "put of the empty key must fail with InvalidKey"
    );
    assert!(matches!(
        b.delete("").await,
        Err(PhysicalError::InvalidKey(_))
    ));
    assert_eq!(b.get("").await.unwrap(), None);
    assert!(b.scan("").await.unwrap().is_empty());
}

pub async fn list_children(b: &dyn PhysicalBackend) {
    let keys = [
        "a/b", "a/c/d", "a/c/e", "a/c/f/g", "a/d", "a/c!", "a/e/", "ab", "b",
    ];
    put_all(b, "list/", &keys).await;
    // A big sub-folder must collapse to one entry (and an efficient
    // implementation seeks past it).
    for i in 0..200 {
        b.put(&format!("list/a/big/{i:04}/leaf"), vec![0])
            .await
            .unwrap();
    }
    let l = |p: &str| {
        let p = format!("list/{p}");
        async move { b.list(&p).await.unwrap() }
    };
    assert_eq!(
        l("a/").await,
        vec!["b", "big/", "c!", "c/", "d", "e/"],
        "immediate children in byte order, folders once with '/'"
    );
    assert_eq!(l("a/c/").await, vec!["d", "e", "f/"]);
    assert_eq!(l("a/c/f/").await, vec!["g"]);
    assert_eq!(l("").await, vec!["a/", "ab", "b"]);
    assert_eq!(
        l("a/e/").await,
        Vec::<String>::new(),
        "a key equal to the prefix is not its own child"
    );
    assert_eq!(l("a/big/").await.len(), 200);
    assert_eq!(l("a/big/0042/").await, vec!["leaf"]);
    assert_eq!(l("nothing/").await, Vec::<String>::new());
    cleanup(b, "list/").await;
}

/// A prefix that does not end with `/` lists children of the keys starting
/// with it, as Vault's physical backends do.
pub async fn list_partial_segment(b: &dyn PhysicalBackend) {
    put_all(b, "partial/", &["ab", "abc/d", "abd", "a/x", "b"]).await;
    assert_eq!(
        b.list("partial/a").await.unwrap(),
        vec!["/", "b", "bc/", "bd"]
    );
    assert_eq!(b.list("partial/abc").await.unwrap(), vec!["/"]);
    cleanup(b, "partial/").await;
}

pub async fn scan_order(b: &dyn PhysicalBackend) {
    let keys = ["z", "a/b/c", "a", "a/b", "é", "A", "a b", "a/", "0"];
    put_all(b, "scan/", &keys).await;
    b.put("scan0", vec![]).await.unwrap();
    b.put("sca", vec![]).await.unwrap();
    let mut expected: Vec<String> = keys.iter().map(|k| format!("scan/{k}")).collect();
    expected.sort();
    assert_eq!(
        b.scan("scan/").await.unwrap(),
        expected,
        "scan returns every key under the prefix, in byte order"
    );
    assert_eq!(
        b.scan("scan/a/").await.unwrap(),
        vec!["scan/a/", "scan/a/b", "scan/a/b/c"]
    );
    b.batch(vec![Op::Delete("scan0".into()), Op::Delete("sca".into())])
        .await
        .unwrap();
    cleanup(b, "scan/").await;
}

pub async fn batch_in_order(b: &dyn PhysicalBackend) {
    b.put("order/existing", vec![9]).await.unwrap();
    b.batch(vec![
        Op::Put("order/a".into(), vec![1]),
        Op::Delete("order/a".into()),
        Op::Delete("order/b".into()),
        Op::Put("order/b".into(), vec![2]),
        Op::Put("order/c".into(), vec![3]),
        Op::Put("order/c".into(), vec![4]),
        Op::Delete("order/existing".into()),
    ])
    .await
    .unwrap();
    assert_eq!(b.get("order/a").await.unwrap(), None, "later delete wins");
    assert_eq!(
        b.get("order/b").await.unwrap(),
        Some(vec![2]),
        "later put wins"
    );
    assert_eq!(b.get("order/c").await.unwrap(), Some(vec![4]));
    assert_eq!(b.get("order/existing").await.unwrap(), None);
    b.batch(Vec::new()).await.unwrap();
    cleanup(b, "order/").await;
}

/// A batch whose last operation is invalid must change nothing.
pub async fn batch_all_or_nothing(b: &dyn PhysicalBackend) {
    b.put("atomic/kept", b"before".to_vec()).await.unwrap();
    let err = b
        .batch(vec![
            Op::Put("atomic/new".into(), vec![1]),
            Op::Put("atomic/kept".into(), b"after".to_vec()),
            Op::Delete("atomic/kept".into()),
            Op::Put(String::new(), vec![2]),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(err, PhysicalError::InvalidKey(_)),
        "a batch with the empty key fails with InvalidKey, got {err:?}"
    );
    assert_eq!(
        b.get("atomic/new").await.unwrap(),
        None,
        "a failed batch must not apply its earlier puts"
    );
    assert_eq!(
        b.get("atomic/kept").await.unwrap().as_deref(),
        Some(&b"before"[..]),
        "a failed batch must not apply its earlier overwrites or deletes"
    );
    assert_eq!(b.scan("atomic/").await.unwrap(), vec!["atomic/kept"]);
    cleanup(b, "atomic/").await;
}

/// A reader interleaved with batches never sees half of one. Each batch `n`
/// writes `n` to `first` then to `second`; the reader reads `first` and then
/// `second`. Since `n` only grows, an atomic backend always gives
/// `second >= first`; a backend applying the puts one by one lets the reader
/// see the new `first` with the old `second`.
pub async fn batch_atomic_visibility(b: &dyn PhysicalBackend) {
    const ROUNDS: u64 = 200;
    let (first, second) = ("visibility/1-first", "visibility/2-second");
    let filler = vec![0x5a; 4096];
    b.batch(vec![
        Op::Put(first.into(), 0u64.to_be_bytes().to_vec()),
        Op::Put(second.into(), 0u64.to_be_bytes().to_vec()),
    ])
    .await
    .unwrap();
    let read = |k: &'static str| async move {
        let v = b.get(k).await.unwrap().expect("written before the race");
        u64::from_be_bytes(v[..8].try_into().unwrap())
    };
    let writer = async {
        for n in 1..=ROUNDS {
            let mut v = n.to_be_bytes().to_vec();
            v.extend_from_slice(&filler);
            b.batch(vec![
                Op::Put(first.into(), v.clone()),
                Op::Put("visibility/3-filler".into(), filler.clone()),
                Op::Put(second.into(), v),
            ])
            .await
            .unwrap();
            tokio::task::yield_now().await;
        }
    };
    let reader = async {
        let mut last = 0;
        loop {
            let f = read(first).await;
            let s = read(second).await;
            assert!(s >= f, "saw half a batch: first = {f}, second = {s}");
            assert!(f >= last, "values went backwards");
            last = f;
            if f == ROUNDS {
                break;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::join!(writer, reader);
    cleanup(b, "visibility/").await;
}

pub async fn large_values(b: &dyn PhysicalBackend) {
    let one_mib: Vec<u8> = (0..(1 << 20)).map(|i: u32| (i % 251) as u8).collect();
    let four_mib: Vec<u8> = (0..(4 << 20) + 3).map(|i: u32| (i % 253) as u8).collect();
    b.put("large/1mib", one_mib.clone()).await.unwrap();
    b.batch(vec![Op::Put("large/4mib".into(), four_mib.clone())])
        .await
        .unwrap();
    assert!(
        b.get("large/1mib").await.unwrap() == Some(one_mib),
        "a 1 MiB value round-trips"
    );
    assert!(
        b.get("large/4mib").await.unwrap() == Some(four_mib),
        "a 4 MiB value round-trips through a batch"
    );
    cleanup(b, "large/").await;
}

pub async fn unicode_and_space_keys(b: &dyn PhysicalBackend) {
    let keys = [
        "with space/inner key",
        "with space/ leading",
        "ключ/значение",
        "ключ/ä",
        "emoji 🔑/🗝️",
        "tab\there",
        "z",
    ];
    put_all(b, "unicode/", &keys).await;
    for k in keys {
        let full = format!("unicode/{k}");
        assert_eq!(
            b.get(&full).await.unwrap().as_deref(),
            Some(k.as_bytes()),
            "key {full:?} round-trips"
        );
    }
    // Byte order: ' ' < 'i', ASCII < multi-byte UTF-8, Cyrillic (0xd0…) < emoji (0xf0…).
    assert_eq!(
        b.list("unicode/").await.unwrap(),
        vec!["emoji 🔑/", "tab\there", "with space/", "z", "ключ/"]
    );
    assert_eq!(
        b.list("unicode/with space/").await.unwrap(),
        vec![" leading", "inner key"]
    );
    assert_eq!(
        b.list("unicode/ключ/").await.unwrap(),
        vec!["ä", "значение"]
    );
    cleanup(b, "unicode/").await;
}

/// `list("")` and `scan("")` cover the whole key space.
pub async fn empty_prefix(b: &dyn PhysicalBackend) {
    assert_eq!(b.list("").await.unwrap(), Vec::<String>::new());
    put_all(b, "", &["top", "dir/x", "dir/y/z", "Dir", "top2/"]).await;
    assert_eq!(
        b.list("").await.unwrap(),
        vec!["Dir", "dir/", "top", "top2/"]
    );
    assert_eq!(
        b.scan("").await.unwrap(),
        vec!["Dir", "dir/x", "dir/y/z", "top", "top2/"]
    );
    cleanup(b, "").await;
}
