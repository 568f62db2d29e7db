//! `arca server`: builds storage and core from the config, serves every
//! listener, and stops on SIGINT/SIGTERM. `-dev` runs in memory, initialized
//! and unsealed, with a printed root token and KV v2 at `secret/`.
//!
//! The server runs on a runtime of its own, on its own thread, so that
//! shutdown can end every task before storage is closed. Shutdown, on the
//! first SIGTERM or SIGINT, in this order (invariants):
//! 1. every listener closes its socket and idle connections, and lets
//!    in-flight requests finish, for at most
//!    [`arca_http::listener::DEFAULT_DRAIN_TIMEOUT`];
//! 2. a raft node answers requests forwarded to it with 503 from then on;
//!    core is sealed (keys and engines dropped; background work runs only
//!    unsealed); the raft node stops Raft and its cluster port;
//! 3. the server's runtime shuts down: every background task (periodic
//!    work, invalidation watcher, retry_join) ends and blocking storage
//!    calls finish, within [`RUNTIME_STOP_TIMEOUT`];
//! 4. storage is closed — the last reference to RocksDB is gone, so no
//!    thread touches it while the process exits — and "storage closed" is
//!    logged; then the pid file is removed and `arca` exits 0.
//!
//! A reference to storage that outlives step 3 (a reference cycle) is
//! reported as an error: the process would exit with RocksDB still open.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use base64::Engine;

use arca_core::{Core, CoreConfig};
use arca_http::{ConnectionLimits, ListenerOptions};
use arca_physical::{InmemBackend, PhysicalBackend, RocksBackend};
use arca_raft::{ForwardHandler, ForwardReq, ForwardResp, RaftNode};

use crate::config::{Config, LogFormat};

/// How long step 3 of shutdown waits for tasks and blocking calls.
pub const RUNTIME_STOP_TIMEOUT: Duration = Duration::from_secs(10);

pub struct DevOptions {
    pub listen_address: String,
    pub root_token_id: Option<String>,
    pub log_level: String,
}

fn init_logging(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ARCA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level.to_lowercase()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Standard => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .try_init(),
    };
}

/// SIGTERM and SIGINT, installed before any listener accepts, so that a
/// signal sent once the server answers is always a graceful stop.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                term: signal(SignalKind::terminate())
                    .context("cannot install a SIGTERM handler")?,
                int: signal(SignalKind::interrupt()).context("cannot install a SIGINT handler")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// Waits for the first signal and names it.
    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "interrupt"
        }
    }
}

/// Serves every listener until a signal (or a listener failure), then
/// stops them all and waits until each has drained.
async fn serve_all(
    core: Arc<Core>,
    listeners: Vec<(ListenerOptions, ConnectionLimits)>,
) -> anyhow::Result<()> {
    if listeners.is_empty() {
        anyhow::bail!("no listener \"tcp\" block in the configuration");
    }
    let mut signals = Signals::install()?;
    #[cfg(unix)]
    {
        // SIGHUP: reopen the audit files (after logrotate moved them).
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup()).context("cannot install a SIGHUP handler")?;
        let core = Arc::downgrade(&core);
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let Some(core) = core.upgrade() else { return };
                tracing::info!("SIGHUP: reopening the audit files");
                core.reopen_audit_files();
            }
        });
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let mut result = Ok(());
    for (opts, limits) in listeners {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tls = opts.tls.is_some();
        let mut stop = stop_rx.clone();
        tasks.spawn(arca_http::serve_until(
            core.clone(),
            opts,
            limits,
            Some(tx),
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        ));
        match rx.await {
            Ok(addr) => println!(
                "    Listener: tcp (addr: {addr:?}, tls: {})",
                if tls { "enabled" } else { "disabled" }
            ),
            Err(_) => {
                // That listener ended before binding; its error is in its task.
                result = Err(anyhow::anyhow!("a listener failed to start"));
                break;
            }
        }
    }
    if result.is_ok() {
        println!("\n==> Arca server started! Log data will stream in below:\n");
        result = tokio::select! {
            sig = signals.recv() => {
                tracing::info!("{sig} received: shutting down (in-flight requests finish first)");
                Ok(())
            }
            Some(res) = tasks.join_next() => Err(listener_ended(res)),
        };
    }
    let _ = stop_tx.send(true);
    while let Some(res) = tasks.join_next().await {
        match res {
            Ok(Ok(())) => {}
            other => {
                let e = listener_ended(other);
                if result.is_ok() {
                    result = Err(e);
                } else {
                    tracing::error!("{e:#}");
                }
            }
        }
    }
    result
}

fn listener_ended(
    res: Result<Result<(), arca_http::ListenerError>, tokio::task::JoinError>,
) -> anyhow::Error {
    match res {
        Ok(Ok(())) => anyhow::anyhow!("a listener stopped unexpectedly"),
        Ok(Err(e)) => anyhow::Error::new(e),
        Err(e) => anyhow::Error::new(e).context("a listener task failed"),
    }
}

/// What must be gone once the server's runtime has stopped.
enum StorageRef {
    Local(Weak<dyn PhysicalBackend>),
    Raft(Weak<RaftNode>),
}

impl StorageRef {
    /// Step 4 of shutdown: storage must be closed by now.
    fn closed(&self) -> bool {
        match self {
            StorageRef::Local(w) => w.strong_count() == 0,
            StorageRef::Raft(w) => w.strong_count() == 0,
        }
    }
}

/// Runs the server built by `make` on a runtime of its own and, once it
/// returns, shuts that runtime down and checks that storage was closed.
async fn on_own_runtime<F, Fut>(make: F) -> anyhow::Result<()>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = (anyhow::Result<()>, Option<StorageRef>)>,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("arca-server".into())
        .spawn(move || {
            let res = (|| -> anyhow::Result<()> {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .thread_name("arca-server-worker")
                    .build()
                    .context("cannot start the server's runtime")?;
                let (served, storage) = rt.block_on(make());
                rt.shutdown_timeout(RUNTIME_STOP_TIMEOUT);
                if let Some(storage) = storage {
                    if storage.closed() {
                        tracing::info!("storage closed");
                    } else {
                        tracing::error!(
                            "storage is still referenced after shutdown; it was not closed \
                             cleanly (report this as a bug)"
                        );
                    }
                }
                served
            })();
            let _ = tx.send(res);
        })
        .context("cannot start the server thread")?;
    rx.await
        .context("the server thread ended without a result")?
}

/// `pid_file`: written at start, removed when the server stops.
struct PidFile(PathBuf);

impl PidFile {
    fn create(path: PathBuf) -> anyhow::Result<PidFile> {
        std::fs::write(&path, format!("{}\n", std::process::id())).with_context(|| {
            format!(
                "cannot write pid_file {}; fix the path or its directory's permissions",
                path.display()
            )
        })?;
        Ok(PidFile(path))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.0) {
            tracing::warn!("cannot remove pid_file {}: {e}", self.0.display());
        }
    }
}

/// Answers requests forwarded to a node that is stopping.
struct ShuttingDown;

#[async_trait]
impl ForwardHandler for ShuttingDown {
    async fn handle(&self, _req: ForwardReq) -> ForwardResp {
        ForwardResp {
            status: 503,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(&serde_json::json!({
                "errors": ["this node is shutting down; retry, another node takes over"]
            }))
            .unwrap_or_default(),
        }
    }
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    init_logging(&config.log_level, config.log_format);
    let pid_file = config.pid_file.clone().map(PidFile::create).transpose()?;
    let result = on_own_runtime(move || serve_config(config)).await;
    drop(pid_file);
    result
}

/// Opens storage, serves until a signal, then steps 1 and 2 of shutdown.
async fn serve_config(config: Config) -> (anyhow::Result<()>, Option<StorageRef>) {
    let mut storage = None;
    let res = serve_config_inner(config, &mut storage).await;
    (res, storage)
}

async fn serve_config_inner(
    config: Config,
    storage: &mut Option<StorageRef>,
) -> anyhow::Result<()> {
    let mut raft_node = None;
    let physical: Arc<dyn PhysicalBackend> = match config.storage.kind.as_str() {
        "raft" => {
            let node = crate::cluster::open_raft(&config).await?;
            *storage = Some(StorageRef::Raft(Arc::downgrade(&node)));
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
            let rocks: Arc<dyn PhysicalBackend> =
                Arc::new(RocksBackend::open(&path).map_err(|e| {
                    anyhow::anyhow!("cannot open RocksDB at {}: {e}", path.display())
                })?);
            *storage = Some(StorageRef::Local(Arc::downgrade(&rocks)));
            rocks
        }
        "inmem" => Arc::new(InmemBackend::new()),
        other => {
            anyhow::bail!(
                "storage type {other:?} is not supported (use \"raft\", \"rocksdb\" or \"inmem\")"
            )
        }
    };
    let audit_policy = arca_audit::Policy {
        // An audit file there could be read back as data. (Arca has no
        // plugin directory: `plugin_directory` is refused by the config.)
        forbidden_dirs: config.storage.path.iter().cloned().collect(),
        allow_prefix: config.allow_audit_log_prefixing,
        ..arca_audit::Policy::default()
    };
    // The configuration's audit devices are checked before anything is
    // served: a mistake there stops the server rather than a device.
    for d in &config.audit {
        let mut probe = d.clone();
        probe.salt = arca_audit::new_salt();
        arca_audit::Device::new(probe, &audit_policy)
            .with_context(|| format!("audit {:?} {:?} in the configuration", d.kind, d.path))?;
    }
    // The seal block's values (and the environment's) are checked before
    // anything is served.
    let auto_seal = match &config.seal {
        Some(b) => Some(
            arca_autoseal::build(&b.kind, &b.options, &|k: &str| std::env::var(k).ok())
                .with_context(|| format!("seal {:?} in the configuration", b.kind))?,
        ),
        None => None,
    };
    let migrate_from = match &config.old_seal {
        Some(b) => Some(
            arca_autoseal::build(&b.kind, &b.options, &|k: &str| std::env::var(k).ok())
                .with_context(|| format!("disabled seal {:?} in the configuration", b.kind))?,
        ),
        None => None,
    };
    let core = Core::new(
        physical,
        CoreConfig {
            auto_seal: auto_seal.clone(),
            migrate_from,
            default_lease_ttl: config.default_lease_ttl,
            max_lease_ttl: config.max_lease_ttl,
            storage_type: config.storage.kind.clone(),
            api_addr: config.api_addr.clone().unwrap_or_default(),
            cluster_name: config.cluster_name.clone().unwrap_or_default(),
            stale_reads: config.stale_reads,
            engines: crate::engines::registry(),
            user_lockout: config.user_lockout.clone().into_iter().collect(),
            audit_policy,
            audit_devices: config.audit.clone(),
            sanitized_config: config.sanitized(),
        },
    );
    let forwarder: Option<Arc<dyn arca_http::Forwarder>> = match &raft_node {
        Some(node) => {
            let handled = Arc::new(crate::cluster::Handled::default());
            core.set_cluster(Arc::new(crate::cluster::RaftCluster {
                node: node.clone(),
                // Certificate files give the node its identity from the
                // start; otherwise core issues one at every unseal.
                managed_identity: !node.has_identity(),
                handled: handled.clone(),
            }));
            node.set_forward_handler(Arc::new(crate::cluster::LocalHandler {
                core: core.clone(),
                node: node.clone(),
            }));
            // A node holding the cluster's data starts sealed and must not
            // lead until it is unsealed (a sealed leader serves nothing;
            // unsealing makes it electable again). An uninitialized node
            // stays electable: `sys/init` bootstraps it as the leader.
            if core.initialized().await.unwrap_or(false) {
                node.set_electable(false);
            }
            crate::cluster::watch_applied(node, core.clone(), handled.clone());
            crate::cluster::spawn_retry_join(&config, core.clone(), node.clone())?;
            Some(Arc::new(crate::cluster::RaftForwarder {
                node: node.clone(),
                handled,
            }))
        }
        None => None,
    };
    core.spawn_periodic(Duration::from_secs(config.periodic_interval));
    if auto_seal.is_some() {
        tokio::spawn(core.clone().run_auto_unseal());
    }
    arca_metrics::global().set_retention(config.telemetry.prometheus_retention_time);
    println!("==> Arca server configuration:\n");
    println!("    Storage: {}", config.storage.kind);
    println!(
        "    Seal: {}",
        config
            .seal
            .as_ref()
            .map(|s| s.kind.as_str())
            .unwrap_or("shamir")
    );
    if let Some(p) = &config.storage.path {
        println!("    Storage path: {}", p.display());
    }
    let listeners = config
        .listeners
        .iter()
        .map(|l| {
            (
                ListenerOptions {
                    address: l.address.clone(),
                    tls: l.tls_options(),
                    forwarder: forwarder.clone(),
                    unauthenticated_metrics_access: l.unauthenticated_metrics_access,
                    legacy_ceremonies: l.legacy_ceremonies,
                },
                l.limits,
            )
        })
        .collect();
    drop(forwarder);
    if !core.initialized().await.unwrap_or(false) {
        println!(
            "    The server is not initialized: run `arca operator init` (or `bao operator init`)."
        );
    } else {
        println!("    The server starts sealed: unseal it with `arca operator unseal` and the key shares.");
    }
    let served = serve_all(core.clone(), listeners).await;
    // Step 2: nothing new reaches core; background work finishes its round
    // and stops; then core drops its keys and engines.
    if let Some(node) = &raft_node {
        node.set_forward_handler(Arc::new(ShuttingDown));
    }
    core.stop_periodic(RUNTIME_STOP_TIMEOUT).await;
    core.seal().await;
    if let Some(node) = &raft_node {
        if tokio::time::timeout(RUNTIME_STOP_TIMEOUT, node.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                "raft did not stop within {RUNTIME_STOP_TIMEOUT:?}; its tasks end with the runtime"
            );
        }
    }
    served
}

/// What a dev server runs with, as a configuration (for
/// `sys/config/state/sanitized`): in-memory storage and one plain-HTTP
/// listener.
fn dev_config(opts: &DevOptions) -> Config {
    let mut c = Config {
        api_addr: Some(format!("http://{}", opts.listen_address)),
        log_level: opts.log_level.clone(),
        ..Config::default()
    };
    if let Some(l) = c.listeners.first_mut() {
        l.address = opts.listen_address.clone();
    }
    c
}

pub async fn run_dev(opts: DevOptions) -> anyhow::Result<()> {
    init_logging(&opts.log_level, LogFormat::Standard);
    on_own_runtime(move || async move { (serve_dev(opts).await, None) }).await
}

async fn serve_dev(opts: DevOptions) -> anyhow::Result<()> {
    let core = Core::new(
        Arc::new(InmemBackend::new()),
        CoreConfig {
            storage_type: "inmem".into(),
            api_addr: format!("http://{}", opts.listen_address),
            engines: crate::engines::registry(),
            sanitized_config: dev_config(&opts).sanitized(),
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
    core.spawn_periodic(Duration::from_secs(10));
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
    let served = serve_all(
        core.clone(),
        vec![(
            ListenerOptions {
                address: opts.listen_address.clone(),
                tls: None,
                forwarder: None,
                unauthenticated_metrics_access: false,
                legacy_ceremonies: Default::default(),
            },
            ConnectionLimits::default(),
        )],
    )
    .await;
    core.stop_periodic(RUNTIME_STOP_TIMEOUT).await;
    core.seal().await;
    served
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
