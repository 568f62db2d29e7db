//! The connection to the directory: dialing the configured URLs in order
//! (plain, StartTLS or LDAPS over rustls), binds and searches.
//!
//! Invariants:
//! - Every network step is bounded: connecting to one URL (TCP, then the
//!   TLS handshake or StartTLS) by `connection_timeout`, each bind, search
//!   and unbind by `request_timeout`. A step that runs out answers an
//!   error naming it; nothing waits on a silent server.
//! - TLS verifies the server's certificate: against the configured
//!   `certificate` when given, else the system's CA store, for the host
//!   named in the URL; only the configured TLS versions are offered. Only
//!   `insecure_tls` (Vault's option, off by default) skips the certificate
//!   check; the handshake's signatures are still verified, so the session
//!   is encrypted to whoever holds the presented certificate's key.
//! - With `max_page_size`, group searches ask for pages of that size
//!   (the paged-results control, RFC 2696), for directories that cap what
//!   one search returns; the whole paged search is bounded like one search.
//! - A bind is made only with a non-empty password or as the anonymous
//!   service bind (empty DN and password); an unauthenticated bind with a
//!   DN (RFC 4513 §5.1.2) is never sent.
//! - A connection is closed (unbound, its driver task ended) when its
//!   [`Conn`] is dropped or closed.

use std::sync::Arc;
use std::time::Duration;

use ldap3::{DerefAliases, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, SearchOptions};

use crate::config::Config;

/// The rustls client configuration `cfg` asks for.
pub(crate) fn tls_config(cfg: &Config) -> Result<rustls::ClientConfig, String> {
    let roots = arca_sdk::tls::roots(&cfg.certificate)
        .map_err(|e| format!("failed to parse server tls cert: {e}"))?;
    let provider = arca_sdk::tls::provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&cfg.tls_versions()?)
        .map_err(|e| format!("TLS versions: {e}"))?;
    let builder = if cfg.insecure_tls {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(arca_sdk::tls::AnyCertificate(provider)))
    } else {
        builder.with_root_certificates(roots)
    };
    if cfg.client_tls_cert.is_empty() && cfg.client_tls_key.is_empty() {
        return Ok(builder.with_no_client_auth());
    }
    let (chain, key) = arca_sdk::tls::client_identity(&cfg.client_tls_cert, &cfg.client_tls_key)
        .map_err(|e| format!("failed to parse client_tls_cert/client_tls_key: {e}"))?;
    builder
        .with_client_auth_cert(chain, key)
        .map_err(|e| format!("failed to parse client X509 key pair: {e}"))
}

/// Why a bind did not succeed.
#[derive(Debug)]
pub(crate) enum BindError {
    /// The server answered with a result code (wrong password: 49).
    Refused(String),
    /// The request did not complete (connection lost, timeout).
    Failed(String),
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BindError::Refused(s) | BindError::Failed(s) => f.write_str(s),
        }
    }
}

/// One open connection.
pub(crate) struct Conn {
    ldap: ldap3::Ldap,
    timeout: Duration,
    deref: DerefAliases,
}

/// Connects to the first of the configured URLs that answers; the error
/// lists why each one failed.
pub(crate) async fn dial(cfg: &Config) -> Result<Conn, String> {
    let mut errors = Vec::new();
    for u in cfg.urls() {
        match dial_one(cfg, u).await {
            Ok(c) => return Ok(c),
            Err(e) => errors.push(format!("error connecting to host {u:?}: {e}")),
        }
    }
    if errors.is_empty() {
        errors.push("no url is configured".into());
    }
    Err(errors.join("; "))
}

async fn dial_one(cfg: &Config, url: &str) -> Result<Conn, String> {
    let connect = Duration::from_secs(cfg.connection_timeout.max(1));
    let mut settings = LdapConnSettings::new().set_conn_timeout(connect);
    let tls = url.starts_with("ldaps://") || cfg.starttls;
    if tls {
        settings = settings
            .set_config(Arc::new(tls_config(cfg)?))
            // (lets ldap3 connect to an IP address without a name check)
            .set_no_tls_verify(cfg.insecure_tls);
    }
    if url.starts_with("ldap://") && cfg.starttls {
        settings = settings.set_starttls(true);
    }
    // ldap3 bounds the connection with `connect`; the outer bound also
    // covers resolving the name.
    let (conn, ldap) = tokio::time::timeout(
        connect + Duration::from_secs(1),
        LdapConnAsync::with_settings(settings, url),
    )
    .await
    .map_err(|_| format!("no connection within {}s", connect.as_secs()))?
    .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = conn.drive().await {
            tracing::debug!(error = %e, "ldap connection ended");
        }
    });
    let deref = match cfg.dereference_aliases.as_str() {
        "finding" => DerefAliases::Finding,
        "searching" => DerefAliases::Searching,
        "always" => DerefAliases::Always,
        _ => DerefAliases::Never,
    };
    Ok(Conn {
        ldap,
        timeout: Duration::from_secs(cfg.request_timeout.max(1)),
        deref,
    })
}

impl Conn {
    /// A simple bind with a DN and a non-empty password.
    pub async fn bind(&mut self, dn: &str, password: &str) -> Result<(), BindError> {
        if password.is_empty() {
            return Err(BindError::Refused(
                "an empty password is never sent (no unauthenticated bind)".into(),
            ));
        }
        self.simple_bind(dn, password).await
    }

    /// The anonymous bind (empty DN and password).
    pub async fn bind_anonymous(&mut self) -> Result<(), BindError> {
        self.simple_bind("", "").await
    }

    async fn simple_bind(&mut self, dn: &str, password: &str) -> Result<(), BindError> {
        let r = tokio::time::timeout(self.timeout, self.ldap.simple_bind(dn, password))
            .await
            .map_err(|_| {
                BindError::Failed(format!(
                    "bind: no answer within {}s",
                    self.timeout.as_secs()
                ))
            })?
            .map_err(|e| BindError::Failed(format!("bind: {e}")))?;
        if r.rc == 0 {
            Ok(())
        } else {
            Err(BindError::Refused(format!("bind: {r}")))
        }
    }

    /// A search; `limit` caps the entries asked for (0: the server's
    /// limit). Entries found before a size limit was hit are returned.
    pub async fn search(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        limit: i32,
    ) -> Result<Vec<SearchEntry>, String> {
        let opts = SearchOptions::new().deref(self.deref).sizelimit(limit);
        let secs = self.timeout.as_secs();
        let r = tokio::time::timeout(
            self.timeout,
            self.ldap
                .with_search_options(opts)
                .search(base, scope, filter, attrs.to_vec()),
        )
        .await
        .map_err(|_| format!("search: no answer within {secs}s"))?
        .map_err(|e| format!("search: {e}"))?;
        // 4: sizeLimitExceeded, with the entries up to the limit.
        if r.1.rc != 0 && r.1.rc != 4 {
            return Err(format!("search: {}", r.1));
        }
        Ok(r.0.into_iter().map(SearchEntry::construct).collect())
    }

    /// A search in pages of `page` entries (the paged-results control);
    /// the whole search is bounded by the request timeout.
    pub async fn search_paged(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        page: i32,
    ) -> Result<Vec<SearchEntry>, String> {
        use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
        let opts = SearchOptions::new().deref(self.deref);
        let secs = self.timeout.as_secs();
        let ldap = &mut self.ldap;
        let run = async move {
            let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
                Box::new(EntriesOnly::new()),
                Box::new(PagedResults::new(page)),
            ];
            let mut stream = ldap
                .with_search_options(opts)
                .streaming_search_with(adapters, base, scope, filter, attrs.to_vec())
                .await?;
            let mut out = Vec::new();
            while let Some(e) = stream.next().await? {
                out.push(SearchEntry::construct(e));
            }
            stream.finish().await.success()?;
            Ok::<_, ldap3::LdapError>(out)
        };
        tokio::time::timeout(self.timeout, run)
            .await
            .map_err(|_| format!("search: no answer within {secs}s"))?
            .map_err(|e| format!("search: {e}"))
    }

    /// Unbinds and closes the connection.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(self.timeout, self.ldap.unbind()).await;
    }
}

/// The values of `attr` (matched case-insensitively, as LDAP attribute
/// names are) in an entry.
pub(crate) fn attr_values<'a>(e: &'a SearchEntry, attr: &str) -> Vec<&'a str> {
    e.attrs
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(attr))
        .flat_map(|(_, v)| v.iter().map(String::as_str))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dialing_tries_every_url_and_says_why_each_failed() {
        // Two closed loopback ports: both are tried, both errors named.
        let ports: Vec<u16> = (0..2)
            .map(|_| {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().port()
            })
            .collect();
        let cfg = Config {
            url: format!(
                "ldap://127.0.0.1:{},ldap://127.0.0.1:{}",
                ports[0], ports[1]
            ),
            ..Config::default()
        };
        let e = dial(&cfg).await.err().expect("nothing listens");
        assert!(
            e.contains(&ports[0].to_string()) && e.contains(&ports[1].to_string()),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_silent_server_runs_into_the_request_timeout() {
        // A listener that accepts and never answers.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let cfg = Config {
            url: format!("ldap://127.0.0.1:{port}"),
            request_timeout: 1,
            ..Config::default()
        };
        let mut c = dial(&cfg).await.expect("TCP connects");
        match c.bind("cn=x", "pw").await {
            Err(BindError::Failed(e)) => assert!(e.contains("no answer within 1s"), "{e}"),
            other => panic!("{other:?}"),
        }
        hold.abort();
    }
}
