//! Mutual TLS on the cluster port, with an identity that can be installed,
//! replaced and removed while the node runs.
//!
//! Invariants:
//! - The cluster port never speaks plaintext. A connection completes only
//!   when both sides present a certificate that chains to the cluster CA
//!   (TLS 1.3 only, ALPN `h2`); the client checks the server's certificate
//!   against the host of the peer's cluster address.
//! - Without an identity (a sealed node whose certificate is issued from
//!   the barrier, see core's `cluster_tls`) the node accepts no connection,
//!   opens none, and its service refuses every RPC on connections made
//!   earlier: it is out of the cluster until it is unsealed.
//! - Private keys live in memory only, inside rustls' configurations and
//!   a zeroized PEM copy that is dropped once parsed.
//! - A stranger cannot tie the port up: at most [`MAX_HANDSHAKES`] TLS
//!   handshakes run at once, each bounded by [`HANDSHAKE_TIMEOUT`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use zeroize::Zeroizing;

/// Concurrent TLS handshakes the cluster port accepts.
pub const MAX_HANDSHAKES: usize = 64;
/// Longest a peer may take to complete a handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// This node's certificate and key, and the CA certificates that every
/// peer's certificate must chain to (PEM).
#[derive(Clone)]
pub struct ClusterTls {
    pub cert_pem: Vec<u8>,
    pub key_pem: Zeroizing<Vec<u8>>,
    pub ca_pem: Vec<u8>,
}

impl std::fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTls")
            .field("cert_pem", &String::from_utf8_lossy(&self.cert_pem))
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Why an identity could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cluster TLS: {what} holds no PEM certificate")]
    NoCertificate { what: &'static str },
    #[error("cluster TLS: the private key is not a PEM PKCS#8, PKCS#1 or SEC1 key: {0}")]
    Key(rustls::pki_types::pem::Error),
    #[error("cluster TLS: cannot read a PEM certificate: {0}")]
    Pem(rustls::pki_types::pem::Error),
    #[error("cluster TLS: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("cluster TLS: the CA certificate is unusable: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// Both halves of an installed identity.
pub(crate) struct Configs {
    pub server: Arc<ServerConfig>,
    pub client: Arc<ClientConfig>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let v = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(TlsError::Pem)?;
    if v.is_empty() {
        return Err(TlsError::NoCertificate { what });
    }
    Ok(v)
}

impl Configs {
    pub(crate) fn build(id: &ClusterTls) -> Result<Configs, TlsError> {
        let chain = certs(&id.cert_pem, "the node certificate")?;
        let key = PrivateKeyDer::from_pem_slice(&id.key_pem).map_err(TlsError::Key)?;
        let mut roots = RootCertStore::empty();
        for ca in certs(&id.ca_pem, "the cluster CA file")? {
            roots.add(ca)?;
        }
        let roots = Arc::new(roots);
        let verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider()).build()?;
        let mut server = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())?;
        server.alpn_protocols = vec![b"h2".to_vec()];
        let mut client = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        client.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Configs {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }
}

/// The identity in use, shared by the server, the clients and the service.
#[derive(Clone, Default)]
pub(crate) struct TlsState {
    current: Arc<RwLock<Option<Arc<Configs>>>>,
}

impl TlsState {
    pub(crate) fn set(&self, c: Option<Configs>) {
        *self.current.write() = c.map(Arc::new);
    }

    pub(crate) fn get(&self) -> Option<Arc<Configs>> {
        self.current.read().clone()
    }

    pub(crate) fn has_identity(&self) -> bool {
        self.current.read().is_some()
    }
}

/// TLS connections accepted on the cluster port, handshakes done off the
/// accept loop. Connections arriving while there is no identity are closed
/// at once.
/// The returned task owns the listener: abort it to close the port.
pub(crate) fn incoming(
    listener: TcpListener,
    tls: TlsState,
) -> (
    impl futures::Stream<Item = std::io::Result<tokio_rustls::server::TlsStream<TcpStream>>>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(MAX_HANDSHAKES);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    let task = tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors and the like: back off, go on.
                    tracing::warn!("cluster port: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if tx.is_closed() {
                return;
            }
            let Some(cfg) = tls.get() else {
                tracing::debug!(
                    "cluster port: {peer} refused: this node has no cluster identity (sealed)"
                );
                continue;
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tracing::warn!(
                    "cluster port: {peer} refused: {MAX_HANDSHAKES} handshakes already in progress"
                );
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let tx = tx.clone();
            tokio::spawn(async move {
                let acceptor = TlsAcceptor::from(cfg.server.clone());
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => {
                        drop(permit);
                        let _ = tx.send(Ok(s)).await;
                    }
                    Ok(Err(e)) => {
                        tracing::info!("cluster port: TLS handshake with {peer} failed: {e}")
                    }
                    Err(_) => tracing::info!("cluster port: TLS handshake with {peer} timed out"),
                }
            });
        }
    });
    (tokio_stream_from(rx), task)
}

fn tokio_stream_from<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}

/// The name a peer's certificate must carry: the host of its cluster
/// address (an IP address or a DNS name).
pub(crate) fn server_name(cluster_addr: &str) -> Result<ServerName<'static>, String> {
    let bad = |e: &dyn std::fmt::Display| {
        format!("cluster address {cluster_addr:?} has no usable host: {e}")
    };
    let uri: tonic::codegen::http::Uri = cluster_addr.parse().map_err(|e| bad(&e))?;
    let host = uri.host().ok_or_else(|| bad(&"no host"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(host.to_string()).map_err(|e| bad(&e))
}

/// Opens a TLS connection to `addr` (a `host:port` the URI names) with the
/// identity installed at the time of the call.
pub(crate) async fn connect(
    tls: &TlsState,
    source: Option<IpAddr>,
    host_port: &str,
    name: ServerName<'static>,
) -> Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>, std::io::Error> {
    let cfg = tls.get().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            "this node has no cluster identity (it is sealed); unseal it to rejoin the cluster",
        )
    })?;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(host_port).await?.collect();
    let mut last = None;
    for addr in addrs {
        let sock = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(ip) = source.filter(|ip| ip.is_ipv4() == addr.is_ipv4()) {
            sock.bind(SocketAddr::new(ip, 0))?;
        }
        match sock.connect(addr).await {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                let s = TlsConnector::from(cfg.client.clone())
                    .connect(name.clone(), tcp)
                    .await?;
                return Ok(TokioIo::new(s));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{host_port} resolves to no address"),
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_come_from_the_cluster_address() {
        assert!(matches!(
            server_name("https://10.0.0.1:8201").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("https://[::1]:8201").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert_eq!(
            server_name("https://arca-1.example:8201").unwrap(),
            ServerName::try_from("arca-1.example").unwrap()
        );
        assert!(server_name("https://bad name:8201").is_err());
    }
}
