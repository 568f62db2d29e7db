//! `arca server`: builds storage and core from the config, serves every
//! listener, and stops on SIGINT/SIGTERM. `-dev` runs in memory, initialized
//! and unsealed, with a printed root token and KV v2 at `secret/`.

use std::sync::Arc;

use anyhow::Context;
use base64::Engine;

use arca_core::{Core, CoreConfig};
use arca_http::ListenerOptions;
use arca_physical::{InmemBackend, PhysicalBackend, RocksBackend};

use crate::config::Config;

pub struct DevOptions {
    pub listen_address: String,
    pub root_token_id: Option<String>,
    pub log_level: String,
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ARCA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level.to_lowercase()));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_target(false)
        .try_init();
}

async fn wait_for_shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("cannot install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn serve_all(core: Arc<Core>, listeners: Vec<ListenerOptions>) -> anyhow::Result<()> {
    if listeners.is_empty() {
        anyhow::bail!("no listener \"tcp\" block in the configuration");
    }
    let mut tasks = tokio::task::JoinSet::new();
    for l in listeners {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tls = l.tls.is_some();
        tasks.spawn(arca_http::serve(core.clone(), l, Some(tx)));
        match rx.await {
            Ok(addr) => println!(
                "    Listener: tcp (addr: {addr:?}, tls: {})",
                if tls { "enabled" } else { "disabled" }
            ),
            Err(_) => {
                // The listener task ended before binding: report its error.
                if let Some(res) = tasks.join_next().await {
                    res??;
                }
                anyhow::bail!("listener failed to start");
            }
        }
    }
    println!("\n==> Arca server started! Log data will stream in below:\n");
    tokio::select! {
        _ = wait_for_shutdown() => {
            tracing::info!("shutdown requested; stopping");
            Ok(())
        }
        Some(res) = tasks.join_next() => {
            res??;
            Ok(())
        }
    }
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    init_logging(&config.log_level);
    let mut raft_node = None;
    let physical: Arc<dyn PhysicalBackend> = match config.storage.kind.as_str() {
        "raft" => {
            let node = crate::cluster::open_raft(&config).await?;
            raft_node = Some(node.clone());
            Arc::new(arca_raft::RaftBackend::new(node))
        }
        "rocksdb" => {
            let path = config
                .storage
                .path
                .clone()
                .context("storage \"rocksdb\" needs a path = \"...\" setting")?;
            std::fs::create_dir_all(&path)
                .with_context(|| format!("cannot create storage directory {}", path.display()))?;
            Arc::new(
                RocksBackend::open(&path).map_err(|e| {
                    anyhow::anyhow!("cannot open RocksDB at {}: {e}", path.display())
                })?,
            )
        }
        "inmem" => Arc::new(InmemBackend::new()),
        other => {
            anyhow::bail!(
                "storage type {other:?} is not supported (use \"raft\", \"rocksdb\" or \"inmem\")"
            )
        }
    };
    let core = Core::new(
        physical,
        CoreConfig {
            default_lease_ttl: config.default_lease_ttl,
            max_lease_ttl: config.max_lease_ttl,
            storage_type: config.storage.kind.clone(),
            api_addr: config.api_addr.clone().unwrap_or_default(),
            cluster_name: config.cluster_name.clone().unwrap_or_default(),
            stale_reads: config.stale_reads,
        },
    );
    let forwarder: Option<Arc<dyn arca_http::Forwarder>> = match &raft_node {
        Some(node) => {
            let handled = Arc::new(crate::cluster::Handled::default());
            core.set_cluster(Arc::new(crate::cluster::RaftCluster {
                node: node.clone(),
                handled: handled.clone(),
            }));
            node.set_forward_handler(Arc::new(crate::cluster::LocalHandler {
                core: core.clone(),
                node: node.clone(),
            }));
            crate::cluster::watch_applied(node, core.clone(), handled);
            crate::cluster::spawn_retry_join(&config, core.clone(), node.clone())?;
            Some(Arc::new(crate::cluster::RaftForwarder {
                node: node.clone(),
            }))
        }
        None => None,
    };
    core.spawn_periodic(std::time::Duration::from_secs(config.periodic_interval));
    println!("==> Arca server configuration:\n");
    println!("    Storage: {}", config.storage.kind);
    if let Some(p) = &config.storage.path {
        println!("    Storage path: {}", p.display());
    }
    let listeners = config
        .listeners
        .iter()
        .map(|l| ListenerOptions {
            address: l.address.clone(),
            tls: if l.tls_disable {
                None
            } else {
                Some((
                    l.tls_cert_file.clone().unwrap_or_default(),
                    l.tls_key_file.clone().unwrap_or_default(),
                ))
            },
            forwarder: forwarder.clone(),
        })
        .collect();
    if !core.initialized().await.unwrap_or(false) {
        println!(
            "    The server is not initialized: run `arca operator init` (or `bao operator init`)."
        );
    } else {
        println!("    The server starts sealed: unseal it with `arca operator unseal` and the key shares.");
    }
    serve_all(core, listeners).await
}

pub async fn run_dev(opts: DevOptions) -> anyhow::Result<()> {
    init_logging(&opts.log_level);
    let core = Core::new(
        Arc::new(InmemBackend::new()),
        CoreConfig {
            storage_type: "inmem".into(),
            api_addr: format!("http://{}", opts.listen_address),
            ..Default::default()
        },
    );
    let init = core
        .initialize(1, 1)
        .await
        .map_err(|e| anyhow::anyhow!("dev init failed: {e}"))?;
    let unseal_key = init.keys[0].clone();
    core.unseal_with_key(&unseal_key)
        .await
        .map_err(|e| anyhow::anyhow!("dev unseal failed: {e}"))?;
    let root = match &opts.root_token_id {
        Some(id) => {
            let id = core
                .create_root_token(Some(id.clone()))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            core.revoke_token(&init.root_token)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            id
        }
        None => init.root_token.clone(),
    };
    let mut opts_map = serde_json::Map::new();
    opts_map.insert("version".into(), serde_json::Value::from("2"));
    core.mount("secret/", "kv", "key/value secret storage", opts_map)
        .await
        .map_err(|e| anyhow::anyhow!("dev mount of secret/ failed: {e}"))?;
    core.spawn_periodic(std::time::Duration::from_secs(10));
    println!("==> Arca server configuration:\n");
    println!("    Storage: inmem (dev mode: nothing is persisted)");
    println!("\nWARNING! dev mode is enabled! In this mode, Arca runs entirely in-memory");
    println!("and starts unsealed with a single unseal key. The root token is already");
    println!("authenticated to the CLI, so you can immediately begin using Arca.\n");
    println!("You may need to set the following environment variables:\n");
    println!("    $ export VAULT_ADDR='http://{}'\n", opts.listen_address);
    println!("The unseal key and root token are displayed below in case you want to");
    println!("seal/unseal the Vault or re-authenticate.\n");
    println!(
        "Unseal Key: {}",
        base64::engine::general_purpose::STANDARD.encode(unseal_key.as_slice())
    );
    println!("Root Token: {root}\n");
    println!("Development mode should NOT be used in production installations!\n");
    let _ = write_token_helper(&root);
    serve_all(
        core,
        vec![ListenerOptions {
            address: opts.listen_address.clone(),
            tls: None,
            forwarder: None,
        }],
    )
    .await
}

/// Dev mode logs the CLI in, like Vault's: the token goes to ~/.vault-token.
fn write_token_helper(token: &str) -> std::io::Result<()> {
    if let Some(home) = std::env::var_os("HOME") {
        let p = std::path::Path::new(&home).join(".vault-token");
        std::fs::write(&p, token)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}
