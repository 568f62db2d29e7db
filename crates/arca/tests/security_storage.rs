//! Storage defences through a real `arca server` (raft storage), driven by
//! the real `bao` CLI and plain HTTP:
//!
//! * snapshot restore is bounded and atomic: a truncated, corrupted or
//!   oversized (gzip bomb) archive is refused with a 400 that says why, and
//!   every key written before and after the snapshot is still there, the
//!   node still active and writable; a valid archive still restores;
//! * the barrier counts its AES-GCM encryptions per key term and rotates the
//!   term automatically when `sys/rotate/config`'s `max_operations` is
//!   reached, while every value written under older terms stays readable.
//!
//! `ARCA_ROTATE_MIN_OPERATIONS` is set for the servers this file starts, so
//! that a budget far below Vault's minimum of one million can be tested; it
//! is set once, before any test of this file starts a thread or a process.

mod common;

use std::sync::Once;

use common::{Bao, Server};
use serde_json::{json, Value};

static ENV: Once = Once::new();

/// Every test calls this first: the variable is set before any server of
/// this binary is spawned (the servers inherit the environment).
fn env() {
    ENV.call_once(|| std::env::set_var("ARCA_ROTATE_MIN_OPERATIONS", "5"));
}

struct Node {
    s: Server,
    token: String,
    keys: Vec<String>,
    bao: Bao,
}

fn raft_node_with_kv() -> Node {
    env();
    let s = Server::start_raft("n1");
    let init = s.init_and_unseal();
    let bao = s.bao().with_token(&init.root_token);
    bao.run(&["secrets", "enable", "-path=secret", "-version=2", "kv"])
        .ok();
    s.wait_kv2_ready("secret", &init.root_token);
    Node {
        token: init.root_token,
        keys: init.keys_b64[..3].to_vec(),
        bao,
        s,
    }
}

impl Node {
    fn put(&self, key: &str, value: &str) {
        self.s.http_ok(
            "POST",
            &format!("/v1/secret/data/{key}"),
            Some(&self.token),
            Some(&json!({ "data": { "v": value } })),
        );
    }

    /// The value of `key`, or `None` when it does not exist.
    fn get(&self, key: &str) -> Option<String> {
        let (status, body) = self.s.http(
            "GET",
            &format!("/v1/secret/data/{key}"),
            Some(&self.token),
            None,
        );
        match status {
            200 => Some(body["data"]["data"]["v"].as_str().unwrap().to_string()),
            404 => None,
            other => panic!("GET secret/data/{key}: {other} {body}"),
        }
    }
}

/// Writes bits LSB-first, as deflate packs them.
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, v: u64, n: u32) {
        self.acc |= v << self.n;
        self.n += n;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }
    /// A Huffman code: most significant bit first.
    fn code(&mut self, code: u32, len: u32) {
        let rev = code.reverse_bits() >> (32 - len);
        self.put(u64::from(rev), len);
    }
    fn literal(&mut self, b: u8) {
        if b < 144 {
            self.code(0x30 + u32::from(b), 8);
        } else {
            self.code(0x190 + u32::from(b) - 144, 9);
        }
    }
}

fn crc32_update(mut reg: u32, data: &[u8]) -> u32 {
    for &b in data {
        reg ^= u32::from(b);
        for _ in 0..8 {
            reg = (reg >> 1) ^ (0xEDB8_8320 & (reg & 1).wrapping_neg());
        }
    }
    reg
}

fn gf2_times(mat: &[u32; 32], mut v: u32) -> u32 {
    let (mut sum, mut i) = (0, 0);
    while v != 0 {
        if v & 1 == 1 {
            sum ^= mat[i];
        }
        v >>= 1;
        i += 1;
    }
    sum
}

/// The CRC register after `n` more zero bytes (the one-zero-bit operator
/// raised to the power 8n, by squaring, as zlib's `crc32_combine`).
fn crc32_zeros(mut reg: u32, n: u64) -> u32 {
    let mut op = [0u32; 32];
    op[0] = 0xEDB8_8320;
    for (i, o) in op.iter_mut().enumerate().skip(1) {
        *o = 1 << (i - 1);
    }
    let mut bits = 8 * n;
    while bits > 0 {
        if bits & 1 == 1 {
            reg = gf2_times(&op, reg);
        }
        let mut sq = [0u32; 32];
        for (k, s) in sq.iter_mut().enumerate() {
            *s = gf2_times(&op, op[k]);
        }
        op = sq;
        bits >>= 1;
    }
    reg
}

/// A gzip'd tar holding one regular file `name` of `size` zero bytes,
/// built directly (fixed-Huffman deflate: a literal, then 258-byte matches
/// at distance 1), so a gigabyte-sized member costs megabytes and no time.
fn zeros_archive(name: &str, size: u64) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..name.len()].copy_from_slice(name.as_bytes());
    header[100..108].copy_from_slice(b"0000600\0");
    header[108..116].copy_from_slice(b"0000000\0");
    header[116..124].copy_from_slice(b"0000000\0");
    header[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    header[136..148].copy_from_slice(b"00000000000\0");
    header[156] = b'0';
    header[257..265].copy_from_slice(b"ustar\x0000");
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    // The member's data, its padding and the two end-of-archive blocks.
    let zeros = size + (512 - size % 512) % 512 + 1024;

    let mut bits = Bits {
        out: vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff],
        acc: 0,
        n: 0,
    };
    bits.put(1, 1); // the final block
    bits.put(1, 2); // fixed Huffman codes
    for b in header {
        bits.literal(b);
    }
    bits.literal(0);
    let mut left = zeros - 1;
    while left >= 258 {
        bits.code(0xC5, 8); // length 258 (symbol 285)
        bits.code(0, 5); // distance 1
        left -= 258;
    }
    for _ in 0..left {
        bits.literal(0);
    }
    bits.code(0, 7); // end of block
    if bits.n > 0 {
        bits.put(0, 8 - bits.n);
    }
    let crc = !crc32_zeros(crc32_update(!0, &header), zeros);
    let mut out = bits.out;
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&((512 + zeros) as u32).to_le_bytes());
    out
}

#[test]
fn the_bomb_builder_writes_what_gzip_and_tar_read() {
    // Known CRCs: one and four zero bytes.
    assert_eq!(!crc32_zeros(!0, 1), 0xD202_EF8D);
    assert_eq!(!crc32_zeros(!0, 4), 0x2144_DF1C);
    assert_eq!(!crc32_update(!0, b"123456789"), 0xCBF4_3926);
    // A small archive of the same shape passes `gzip -t` and lists in tar.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("z.tar.gz");
    std::fs::write(&p, zeros_archive("meta.json", 100_000)).unwrap();
    let out = std::process::Command::new("tar")
        .args(["-tvzf", p.to_str().unwrap()])
        .output()
        .expect("tar must be installed");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        listing.contains("100000") && listing.contains("meta.json"),
        "{listing}"
    );
}

fn restore(n: &Node, path: &std::path::Path) -> common::Out {
    n.bao.run(&[
        "operator",
        "raft",
        "snapshot",
        "restore",
        path.to_str().unwrap(),
    ])
}

#[test]
fn snapshot_restore_refuses_truncated_corrupt_and_bomb_archives_and_keeps_the_data() {
    let n = raft_node_with_kv();
    let work = n.s.work_dir();
    for i in 0..20 {
        n.put(&format!("app{i}"), &format!("v{i}"));
    }
    let snap = work.join("good.snap");
    n.bao
        .run(&[
            "operator",
            "raft",
            "snapshot",
            "save",
            snap.to_str().unwrap(),
        ])
        .ok();
    let good = std::fs::read(&snap).unwrap();
    assert_eq!(good[..2], [0x1f, 0x8b], "a gzip archive");
    // Changes after the snapshot: a failed restore must keep them too.
    n.put("app0", "changed");
    n.put("later", "x");

    let check_intact = |what: &str| {
        assert_eq!(n.get("app0").as_deref(), Some("changed"), "after {what}");
        assert_eq!(n.get("later").as_deref(), Some("x"), "after {what}");
        for i in 1..20 {
            assert_eq!(
                n.get(&format!("app{i}")),
                Some(format!("v{i}")),
                "after {what}"
            );
        }
        // Still the active node, still taking writes.
        assert_eq!(n.s.http("GET", "/v1/sys/health", None, None).0, 200);
        n.put("probe", what);
        assert_eq!(n.get("probe").as_deref(), Some(what));
    };

    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated-half",
            good[..good.len() / 2].to_vec(),
            "truncated",
        ),
        (
            "truncated-trailer",
            good[..good.len() - 4].to_vec(),
            "truncated",
        ),
        (
            "garbage",
            b"this is not a snapshot".to_vec(),
            "not a snapshot",
        ),
    ];
    let mut corrupt = good.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0xff;
    cases.push(("corrupt", corrupt, "snapshot"));
    // 64 MiB of zeros as meta.json (limit 64 KiB), and 2 GiB + 1 MiB of
    // zeros as state.bin (limit 2 GiB): a few MiB on the wire.
    let small_bomb = zeros_archive("meta.json", 64 << 20);
    assert!(small_bomb.len() < 1 << 20, "{}", small_bomb.len());
    cases.push(("meta bomb", small_bomb, "meta.json"));
    let big_bomb = zeros_archive("state.bin", (2 << 30) + (1 << 20));
    assert!(big_bomb.len() < 16 << 20, "{}", big_bomb.len());
    cases.push(("state bomb", big_bomb, "state.bin is 2148532224 bytes"));

    for (what, bytes, says) in cases {
        let p = work.join(format!("{}.snap", what.replace(' ', "-")));
        std::fs::write(&p, &bytes).unwrap();
        let out = restore(&n, &p);
        let all = format!("{}\n{}", out.stdout, out.stderr);
        assert_ne!(out.code, 0, "{what}: {}", out.describe());
        assert!(all.contains("Code: 400"), "{what}: {}", out.describe());
        assert!(
            all.to_lowercase().contains(&says.to_lowercase()),
            "{what}: expected {says:?} in {}",
            out.describe()
        );
        check_intact(what);
    }

    // The valid archive still restores: the later changes are rolled back.
    restore(&n, &snap).ok();
    assert_eq!(n.get("app0").as_deref(), Some("v0"));
    assert_eq!(n.get("later"), None);
    assert_eq!(n.get("probe"), None);
    for i in 1..20 {
        assert_eq!(n.get(&format!("app{i}")), Some(format!("v{i}")));
    }
    n.put("after-restore", "ok");
    assert_eq!(n.get("after-restore").as_deref(), Some("ok"));
}

fn sh(dir: &std::path::Path, cmd: &str) -> String {
    let out = std::process::Command::new("sh")
        .args(["-c", cmd])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{cmd}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_restore_that_fails_half_way_leaves_the_old_data() {
    let n = raft_node_with_kv();
    let work = n.s.work_dir();
    // More than one restore batch of data (a few MiB).
    let big = "x".repeat(100 << 10);
    for i in 0..40 {
        n.put(&format!("big{i}"), &format!("{i}-{big}"));
    }
    let snap = work.join("good.snap");
    n.bao
        .run(&[
            "operator",
            "raft",
            "snapshot",
            "save",
            snap.to_str().unwrap(),
        ])
        .ok();
    n.put("big0", "changed");
    n.put("later", "x");

    // Take the archive apart and cut the records' end marker off, with
    // checksums that match: the archive is well formed, its records are
    // not. `snapshot-force` skips the unseal-key check, not this one.
    let x = work.join("x");
    std::fs::create_dir(&x).unwrap();
    sh(&x, &format!("tar -xzf {}", snap.display()));
    let state = std::fs::read(x.join("state.bin")).unwrap();
    assert!(state.len() > 3 << 20, "{}", state.len());
    std::fs::write(x.join("state.bin"), &state[..state.len() - 4]).unwrap();
    sh(&x, "sha256sum meta.json state.bin > SHA256SUMS");
    let bad = work.join("bad.snap");
    sh(
        &x,
        &format!(
            "tar -czf {} meta.json state.bin SHA256SUMS SHA256SUMS.sealed",
            bad.display()
        ),
    );
    let out = n.bao.run(&[
        "operator",
        "raft",
        "snapshot",
        "restore",
        "-force",
        bad.to_str().unwrap(),
    ]);
    assert_ne!(out.code, 0, "{}", out.describe());
    let all = format!("{}\n{}", out.stdout, out.stderr);
    assert!(
        all.contains("Code: 400") && all.contains("truncated") && all.contains("unchanged"),
        "{}",
        out.describe()
    );
    // Nothing of the snapshot was applied, nothing of the data was lost,
    // and the node neither sealed nor stopped leading.
    assert_eq!(n.get("big0").as_deref(), Some("changed"));
    assert_eq!(n.get("later").as_deref(), Some("x"));
    for i in 1..40 {
        assert_eq!(n.get(&format!("big{i}")), Some(format!("{i}-{big}")));
    }
    assert_eq!(n.s.http("GET", "/v1/sys/health", None, None).0, 200);
    n.put("still", "writable");
    assert_eq!(n.get("still").as_deref(), Some("writable"));
}

fn key_status(n: &Node) -> (u64, u64) {
    let v: Value =
        n.s.http_ok("GET", "/v1/sys/key-status", Some(&n.token), None);
    (
        v["data"]["term"].as_u64().unwrap(),
        v["data"]["encryptions"].as_u64().unwrap(),
    )
}

#[test]
fn the_barrier_key_rotates_automatically_after_max_operations() {
    let n = raft_node_with_kv();
    // Vault's defaults.
    let cfg =
        n.s.http_ok("GET", "/v1/sys/rotate/config", Some(&n.token), None);
    assert_eq!(cfg["data"]["max_operations"], 3_865_470_566u64, "{cfg}");
    assert_eq!(cfg["data"]["enabled"], true, "{cfg}");
    assert_eq!(cfg["data"]["interval"], 0, "{cfg}");
    // Out of range settings are refused with Vault's messages.
    for (body, says) in [
        (
            json!({"max_operations": 4_000_000_000u64}),
            "max_operations must be in the range",
        ),
        (
            json!({"max_operations": 2}),
            "max_operations must be in the range [5,",
        ),
        (
            json!({"interval": "1h"}),
            "interval must be greater or equal to 24h0m0s",
        ),
    ] {
        let (status, v) =
            n.s.http("POST", "/v1/sys/rotate/config", Some(&n.token), Some(&body));
        assert_eq!(status, 400, "{body}: {v}");
        assert!(v.to_string().contains(says), "{body}: {v}");
    }
    n.bao
        .run(&[
            "write",
            "sys/rotate/config",
            "max_operations=20",
            "interval=48h",
        ])
        .ok();
    let cfg = n.bao.json(&["read", "-format=json", "sys/rotate/config"]);
    assert_eq!(cfg["data"]["max_operations"], 20, "{cfg}");
    assert_eq!(cfg["data"]["interval"], "48h0m0s", "{cfg}");
    assert_eq!(cfg["data"]["enabled"], true, "{cfg}");

    let (term0, _) = key_status(&n);
    let mut seen_terms = vec![term0];
    for i in 0..60 {
        n.put(&format!("k{i}"), &format!("value-{i}"));
        let (term, enc) = key_status(&n);
        assert!(
            enc <= 20,
            "term {term} counted {enc} encryptions, over the budget of 20"
        );
        if *seen_terms.last().unwrap() != term {
            seen_terms.push(term);
        }
    }
    assert!(
        seen_terms.len() >= 3,
        "60 writes under a budget of 20 rotate at least twice: terms {seen_terms:?}"
    );
    assert!(seen_terms.windows(2).all(|w| w[1] > w[0]), "{seen_terms:?}");
    // Everything written under the older terms still reads.
    for i in 0..60 {
        assert_eq!(n.get(&format!("k{i}")), Some(format!("value-{i}")));
    }

    // The count and the settings survive a restart (the settings live in
    // the replicated keyring, the count in persisted reservations, which a
    // restart can only round upwards).
    let (term_before, enc_before) = key_status(&n);
    let mut n = n;
    n.s.restart();
    n.s.unseal_with(&n.keys);
    let (term, enc) = key_status(&n);
    assert_eq!(term, term_before);
    assert!(enc >= enc_before, "{enc} < {enc_before}");
    let cfg = n.bao.json(&["read", "-format=json", "sys/rotate/config"]);
    assert_eq!(cfg["data"]["max_operations"], 20, "{cfg}");
    for i in 60..80 {
        n.put(&format!("k{i}"), &format!("value-{i}"));
        assert!(key_status(&n).1 <= 20);
    }
    assert!(
        key_status(&n).0 > term_before,
        "rotated again after the restart"
    );
    for i in 0..80 {
        assert_eq!(n.get(&format!("k{i}")), Some(format!("value-{i}")));
    }
}
