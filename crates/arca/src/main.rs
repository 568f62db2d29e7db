//! `arca`: the Arca server and its Vault-compatible CLI. See [`arca::cli`].

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    std::process::exit(arca::cli::run(args).await);
}
