//! An index of things by the second they are due, kept in ordinary
//! storage so that finding what is due touches only what is due.
//!
//! A due time `ts` (unix seconds) and a name are stored at
//! `<prefix><ts >> 16>/<ts >> 8>/<ts>/<name>` with every number zero-padded,
//! so byte order is time order. A walk lists the top level (one folder per
//! ~18 h that holds anything), then only the folders whose range has
//! started, down to the seconds that have passed: the leases that expire
//! next month are never read by today's ticks, however many there are.
//! The storage's list seeks past sub-folders, so each level costs the
//! number of folders it shows, not the keys under them.

use arca_sdk::{Storage, StorageError};

/// The index key of `name` due at `ts`.
pub(crate) fn key(prefix: &str, ts: i64, name: &str) -> String {
    let ts = ts.max(0);
    format!("{prefix}{:08}/{:010}/{:012}/{name}", ts >> 16, ts >> 8, ts)
}

/// One due entry: its full key, due time and name.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Due {
    pub key: String,
    pub ts: i64,
    pub name: String,
}

fn number(folder: &str) -> Option<i64> {
    folder.strip_suffix('/')?.parse().ok()
}

/// Up to `limit` entries due at or before `now`, earliest first.
pub(crate) async fn due(
    s: &dyn Storage,
    prefix: &str,
    now: i64,
    limit: usize,
) -> Result<Vec<Due>, StorageError> {
    let mut out = Vec::new();
    for a in s.list(prefix).await? {
        match number(&a) {
            Some(v) if v > now >> 16 => break,
            Some(_) => {}
            None => continue,
        }
        let pa = format!("{prefix}{a}");
        for b in s.list(&pa).await? {
            match number(&b) {
                Some(v) if v > now >> 8 => break,
                Some(_) => {}
                None => continue,
            }
            let pb = format!("{pa}{b}");
            for c in s.list(&pb).await? {
                let ts = match number(&c) {
                    Some(v) if v > now => break,
                    Some(v) => v,
                    None => continue,
                };
                let pc = format!("{pb}{c}");
                for name in s.list(&pc).await? {
                    if name.ends_with('/') {
                        continue;
                    }
                    out.push(Due {
                        key: format!("{pc}{name}"),
                        ts,
                        name,
                    });
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arca_sdk::testing::InmemStorage;

    #[tokio::test]
    async fn finds_what_is_due_in_time_order() {
        let s = InmemStorage::new();
        let base = 1_800_000_000;
        for (ts, n) in [
            (base + 5, "e"),
            (base, "a"),
            (base + 1, "b"),
            (base + 300, "far"),
            (base + 100_000, "farther"),
            (base - 70_000, "old"),
        ] {
            s.put(&key("t/", ts, n), vec![]).await.unwrap();
        }
        let names = |v: Vec<Due>| v.into_iter().map(|d| d.name).collect::<Vec<_>>();
        assert_eq!(
            names(due(&s, "t/", base + 1, 100).await.unwrap()),
            ["old", "a", "b"]
        );
        assert_eq!(
            names(due(&s, "t/", base + 1, 2).await.unwrap()),
            ["old", "a"]
        );
        assert_eq!(
            names(due(&s, "t/", base + 300, 100).await.unwrap()),
            ["old", "a", "b", "e", "far"]
        );
        assert!(due(&s, "t/", base - 80_000, 100).await.unwrap().is_empty());
        let all = due(&s, "t/", base + 200_000, 100).await.unwrap();
        assert_eq!(all.len(), 6);
        assert_eq!(all[0].ts, base - 70_000);
        assert_eq!(all[5].key, key("t/", base + 100_000, "farther"));
    }
}
