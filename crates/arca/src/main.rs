//! `arca`: the Arca server and its Vault-compatible CLI. See [`arca::cli`].

#[tokio::main]
async fn main() {
    tune_malloc();
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    std::process::exit(arca::cli::run(args).await);
}

/// glibc's malloc raises its mmap threshold after the first large free and
/// then serves later large blocks from per-thread arenas that it keeps
/// (found with argon2id's 19 MiB per password check, still made for users
/// stored before userpass moved to bcrypt: 200 logins left ~700 MiB
/// resident). A fixed threshold keeps every block above 1 MiB in its own
/// mapping, returned to the system when freed (measured: 200 logins then
/// leave the resident set where it was).
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called once,
    // before the runtime allocates from other threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
