//! The Vault CLI's default token helper: the token lives in `~/.vault-token`.
//!
//! `arca login` stores the token here and every later command reads it when
//! neither `ARCA_TOKEN` nor `VAULT_TOKEN` is set, so the `arca` and `vault`
//! CLIs share one login. Invariant: the file holds the token alone (surrounding
//! whitespace is ignored on read) and is written with mode `0600`.

use std::io;
use std::path::{Path, PathBuf};

/// `$HOME/.vault-token`, or `None` when `HOME` is unset.
pub fn token_path() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".vault-token"))
}

/// The stored token, `Ok(None)` if there is none.
pub fn read_token() -> io::Result<Option<String>> {
    match token_path() {
        Some(path) => read_token_from(&path),
        None => Ok(None),
    }
}

/// Stores `token`, replacing any previous one.
pub fn store_token(token: &str) -> io::Result<()> {
    let path =
        token_path().ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "HOME is not set"))?;
    store_token_at(&path, token)
}

/// Removes the stored token; a missing file is not an error.
pub fn erase_token() -> io::Result<()> {
    match token_path() {
        Some(path) => match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
        None => Ok(()),
    }
}

/// Reads a token file; missing or blank files yield `Ok(None)`.
pub fn read_token_from(path: &Path) -> io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => {
            let t = s.trim();
            Ok((!t.is_empty()).then(|| t.to_string()))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes a token file with mode `0600` (the token alone, no newline).
pub fn store_token_at(path: &Path, token: &str) -> io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(token.trim().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_trim() {
        let dir = std::env::temp_dir().join(format!("arca-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(".vault-token");
        assert_eq!(read_token_from(&path).unwrap(), None);
        store_token_at(&path, "hvs.abc\n").unwrap();
        assert_eq!(read_token_from(&path).unwrap().as_deref(), Some("hvs.abc"));
        std::fs::write(&path, "  \n").unwrap();
        assert_eq!(read_token_from(&path).unwrap(), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            store_token_at(&path, "t").unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
