//! `login` and the renewal of the tokens it creates.
//!
//! A login token's metadata is Vault's: `cert_name`, `common_name`,
//! `serial_number` (decimal), `subject_key_id` and `authority_key_id`
//! (`aa:bb:..`), plus the `allowed_metadata_extensions` values. Its
//! internal data (never shown) keeps the entry name and the login
//! certificate with the intermediates it came with (base64 DER), which
//! renewal re-verifies. The identity alias is the common name; it carries
//! the token's metadata only with `config.enable_identity_alias_metadata`.
//!
//! An entry with `ocsp_enabled` accepts a login only once OCSP allows it
//! (see the `ocsp` module); when OCSP refuses, the next entry that trusts
//! the chain is tried, and if none is left the login is refused with what
//! OCSP said. Renewal with binding checks OCSP again for the entry.

use std::collections::HashSet;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::Value;

use arca_sdk::{cidr, token_fields, Auth, Ctx, HandlerResult, LogicalError, Response};

use crate::verify::{self, Refusal};
use crate::{config, crl, entry, ocsp, CertAuth};

fn refused(r: Refusal) -> LogicalError {
    LogicalError::invalid(r.to_string())
}

/// Policies as compared at renewal: without `default`, sorted.
fn without_default(v: &[String]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().filter(|p| *p != "default").cloned().collect();
    v.sort();
    v.dedup();
    v
}

impl CertAuth {
    /// OCSP for a verified login against entry `e` (nothing when the entry
    /// does not ask for it): `Err` says why it refuses.
    async fn ocsp_allows(
        &self,
        e: &entry::CertEntry,
        leaf: &[u8],
        v: &verify::Verified,
        now: i64,
    ) -> Result<(), String> {
        if !e.ocsp.ocsp_enabled {
            return Ok(());
        }
        // A trusted leaf's issuer may also be among ocsp_ca_certificates.
        let issuer = v.issuer.clone().or_else(|| {
            let extras = ocsp::extra_certificates(&e.ocsp.ocsp_ca_certificates).ok()?;
            verify::find_issuer(leaf, &extras, now)
        });
        match ocsp::check(&self.ocsp_cache, &e.ocsp, leaf, issuer.as_deref(), now).await {
            ocsp::Verdict::Good => Ok(()),
            ocsp::Verdict::Revoked(why) => Err(why),
            ocsp::Verdict::Failed(why) if e.ocsp.ocsp_fail_open => {
                tracing::warn!(
                    entry = %e.name,
                    serial = %v.serial_number,
                    error = %why,
                    "OCSP could not establish the login certificate's status; allowed by ocsp_fail_open"
                );
                Ok(())
            }
            ocsp::Verdict::Failed(why) => Err(why),
        }
    }

    pub(crate) async fn login(&self, c: Ctx<'_>) -> HandlerResult {
        let presented: &[Vec<u8>] = c
            .req
            .connection
            .as_ref()
            .map(|conn| conn.peer_certificates.as_slice())
            .unwrap_or(&[]);
        if presented.is_empty() {
            return Err(refused(Refusal::NoCertificate));
        }
        let name = c.data.str_or("name", "")?.trim().to_lowercase();
        let entries = if name.is_empty() {
            entry::load_all(c.storage).await?
        } else {
            entry::load(c.storage, &name).await?.into_iter().collect()
        };
        let candidates: Vec<verify::Candidate<'_>> =
            entries.iter().map(entry::CertEntry::candidate).collect();
        let revoked = crl::revoked(c.storage).await?;
        let cfg = config::load(c.storage).await?;
        self.ocsp_cache.set_capacity(cfg.cache_capacity());
        let now = self.system.now();
        let mut skip = HashSet::new();
        let mut ocsp_errors: Vec<String> = Vec::new();
        let v = loop {
            match verify::authenticate_except(presented, &candidates, &revoked, now, &skip) {
                Ok(v) => match self
                    .ocsp_allows(&entries[v.entry], &presented[0], &v, now)
                    .await
                {
                    Ok(()) => break v,
                    Err(why) => {
                        skip.insert(v.entry);
                        if !ocsp_errors.contains(&why) {
                            ocsp_errors.push(why);
                        }
                    }
                },
                Err(r) if ocsp_errors.is_empty() => return Err(refused(r)),
                Err(_) => return Err(refused(Refusal::Ocsp(ocsp_errors.join("; ")))),
            }
        };
        let e = &entries[v.entry];
        if !e.token.token_bound_cidrs.is_empty() {
            let blocks = cidr::parse(&e.token.token_bound_cidrs)?;
            let inside = c
                .req
                .connection
                .as_ref()
                .is_some_and(|conn| cidr::contains(&blocks, conn.remote_addr));
            if !inside {
                return Err(LogicalError::PermissionDenied);
            }
        }
        let mut auth = Auth {
            display_name: if e.display_name.is_empty() {
                e.name.clone()
            } else {
                e.display_name.clone()
            },
            ..Default::default()
        };
        auth.metadata.extend(v.extension_metadata.clone());
        for (k, val) in [
            ("cert_name", e.name.clone()),
            ("common_name", v.common_name.clone()),
            ("serial_number", v.serial_number.clone()),
            ("subject_key_id", verify::hex_colons(&v.subject_key_id)),
            ("authority_key_id", verify::hex_colons(&v.authority_key_id)),
        ] {
            auth.metadata.insert(k.to_string(), val);
        }
        e.token.fill(&mut auth);
        // The identity alias is the certificate's common name (Vault's),
        // with the token's metadata when the config asks for it.
        auth.alias = Some(arca_sdk::Alias {
            name: v.common_name.clone(),
            metadata: if cfg.enable_identity_alias_metadata {
                auth.metadata.clone()
            } else {
                Default::default()
            },
        });
        let d = &mut auth.internal_data;
        d.insert("cert_name".into(), Value::from(e.name.clone()));
        d.insert("certificate".into(), Value::from(B64.encode(&presented[0])));
        d.insert(
            "chain".into(),
            Value::from(
                presented[1..]
                    .iter()
                    .map(|c| B64.encode(c))
                    .collect::<Vec<_>>(),
            ),
        );
        d.insert(
            "subject_key_id".into(),
            Value::from(B64.encode(&v.subject_key_id)),
        );
        d.insert(
            "authority_key_id".into(),
            Value::from(B64.encode(&v.authority_key_id)),
        );
        Ok(Some(Response::login(auth)))
    }

    /// A login token is renewed: its entry must still exist with the same
    /// policies, and (unless `disable_binding`) the login certificate must
    /// still verify against it; the entry's token settings apply.
    pub(crate) async fn renew(&self, c: Ctx<'_>) -> HandlerResult {
        let name = token_fields::renewing(c.req, "cert_name")?;
        let e = entry::load(c.storage, &name).await?.ok_or_else(|| {
            LogicalError::invalid(format!(
                "certificate entry {name:?} no longer exists, not renewing"
            ))
        })?;
        let login = c
            .req
            .auth
            .as_ref()
            .ok_or_else(|| LogicalError::invalid("no login to renew"))?;
        if without_default(&e.token.token_policies) != without_default(&login.token_policies) {
            return Err(LogicalError::invalid("policies have changed, not renewing"));
        }
        let cfg = config::load(c.storage).await?;
        self.ocsp_cache.set_capacity(cfg.cache_capacity());
        if !cfg.disable_binding {
            let decode = |v: Option<&Value>| -> Option<Vec<u8>> {
                v.and_then(Value::as_str).and_then(|s| B64.decode(s).ok())
            };
            let Some(leaf) = decode(login.internal_data.get("certificate")) else {
                return Err(LogicalError::invalid(
                    "cannot validate renewal: the login did not record its client certificate",
                ));
            };
            let presented: Vec<Vec<u8>> = match &c.req.connection {
                Some(conn) => {
                    if !verify::same_leaf(&conn.peer_certificates, &leaf) {
                        return Err(LogicalError::invalid(
                            "client identity during renewal does not match the client identity used during login",
                        ));
                    }
                    conn.peer_certificates.clone()
                }
                None => {
                    let chain = login
                        .internal_data
                        .get("chain")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(|v| decode(Some(v))).collect())
                        .unwrap_or_else(Vec::new);
                    std::iter::once(leaf).chain(chain).collect()
                }
            };
            let revoked = crl::revoked(c.storage).await?;
            let now = self.system.now();
            let no_longer = |why: String| {
                LogicalError::invalid(format!(
                    "the login certificate no longer verifies against certificate entry {name:?}, not renewing: {why}"
                ))
            };
            let v = verify::authenticate(&presented, &[e.candidate()], &revoked, now)
                .map_err(|r| no_longer(r.to_string()))?;
            self.ocsp_allows(&e, &presented[0], &v, now)
                .await
                .map_err(|why| no_longer(Refusal::Ocsp(why).to_string()))?;
        }
        Ok(Some(token_fields::renewed(&e.token)))
    }
}
