//! TCP listeners, plain or TLS (rustls), serving the API router.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::rustls;

use arca_core::Core;

#[derive(Clone)]
pub struct ListenerOptions {
    pub address: String,
    /// `Some((cert, key))` serves TLS; `None` serves plain HTTP (`tls_disable`).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Where a standby sends requests it cannot serve (cluster mode).
    pub forwarder: Option<Arc<dyn crate::Forwarder>>,
}

impl std::fmt::Debug for ListenerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerOptions")
            .field("address", &self.address)
            .field("tls", &self.tls)
            .field("forwarder", &self.forwarder.is_some())
            .finish()
    }
}

fn tls_config(cert: &PathBuf, key: &PathBuf) -> anyhow::Result<rustls::ServerConfig> {
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(cert)
            .with_context(|| format!("cannot open tls_cert_file {}", cert.display()))?,
    ))
    .collect::<Result<Vec<_>, _>>()
    .with_context(|| {
        format!(
            "tls_cert_file {} is not a PEM certificate chain",
            cert.display()
        )
    })?;
    if certs.is_empty() {
        anyhow::bail!("tls_cert_file {} holds no certificate", cert.display());
    }
    let key_der = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(key)
            .with_context(|| format!("cannot open tls_key_file {}", key.display()))?,
    ))
    .with_context(|| format!("tls_key_file {} is not a PEM private key", key.display()))?
    .ok_or_else(|| anyhow::anyhow!("tls_key_file {} holds no private key", key.display()))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key_der)
    .context("tls_cert_file and tls_key_file do not form a valid pair")?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Binds the listener and serves until the process ends. Returns the bound
/// address through `bound` as soon as the socket is listening.
pub async fn serve(
    core: Arc<Core>,
    opts: ListenerOptions,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&opts.address)
        .await
        .with_context(|| format!("cannot listen on {}", opts.address))?;
    let local = listener.local_addr()?;
    if let Some(tx) = bound {
        let _ = tx.send(local);
    }
    let app = crate::app_with(core, opts.forwarder.clone());
    let acceptor = match &opts.tls {
        Some((cert, key)) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls_config(
            cert, key,
        )?))),
        None => None,
    };
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let svc = TowerToHyperService::new(app.clone());
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let res = match acceptor {
                Some(acc) => match acc.accept(stream).await {
                    Ok(tls) => {
                        builder
                            .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                            .await
                    }
                    Err(e) => {
                        tracing::debug!("TLS handshake failed: {e}");
                        return;
                    }
                },
                None => {
                    builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .await
                }
            };
            if let Err(e) = res {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
}
