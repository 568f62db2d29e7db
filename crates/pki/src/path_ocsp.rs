//! The OCSP responder (RFC 6960): `ocsp` takes a DER request by POST
//! (`Content-Type: application/ocsp-request`), `ocsp/<base64>` by GET.
//!
//! The answer is signed by the issuer of the certificates asked about,
//! names it by key hash, carries its certificate, and echoes a request
//! nonce. Statuses come from replicated state through the node's CRL index
//! (revoked, with the revocation time), the certificate store (good) or
//! neither (unknown, e.g. a `no_store` certificate), so every unsealed node
//! answers, leader or no leader. A certificate of an issuer this mount does
//! not have is "unknown", signed by the default issuer. Failures are OCSP
//! responses too, with Vault's HTTP codes: `malformedRequest` (400) for what
//! does not parse, `unauthorized` (401) when `config/crl` sets
//! `ocsp_disable` or there is no issuer to sign with.

use base64::Engine as _;
use der::asn1::OctetString;
use der::{Decode, Encode};
use sha1::Digest;
use x509_ocsp::{
    BasicOcspResponse, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse,
    OcspResponseStatus, ResponderId, ResponseBytes, ResponseData, RevokedInfo, SingleResponse,
};

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use crate::backend::Pki;
use crate::model::{self, raw, CertEntry, IssuerEntry};
use crate::{crypto, x509};

const ID_PKIX_OCSP_BASIC: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
const ID_PKIX_OCSP_NONCE: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
const ID_SHA1: der::oid::ObjectIdentifier = der::oid::ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const ID_SHA256: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// An OCSP answer without response bytes (an error status) and its HTTP
/// status code.
fn status_only(status: OcspResponseStatus, http: u16) -> Response {
    let der = OcspResponse {
        response_status: status,
        response_bytes: None,
    }
    .to_der()
    .unwrap_or_default();
    let mut r = raw("application/ocsp-response", der);
    if let Some(raw) = r.raw.as_mut() {
        raw.status = http;
    }
    r
}

fn hash(alg: &der::oid::ObjectIdentifier, data: &[u8]) -> Option<Vec<u8>> {
    if *alg == ID_SHA1 {
        Some(sha1::Sha1::digest(data).to_vec())
    } else if *alg == ID_SHA256 {
        Some(sha2::Sha256::digest(data).to_vec())
    } else {
        None
    }
}

fn internal(e: impl std::fmt::Display) -> LogicalError {
    LogicalError::internal(format!("OCSP: {e}"))
}

impl Pki {
    /// `GET ocsp/:req` (base64 DER in the path).
    async fn ocsp_get(&self, c: Ctx<'_>) -> HandlerResult {
        let req = c.data.get_str("req")?;
        self.ocsp(c, req).await
    }

    /// `POST ocsp` (DER body).
    async fn ocsp_post(&self, c: Ctx<'_>) -> HandlerResult {
        self.ocsp(c, None).await
    }

    async fn ocsp(&self, c: Ctx<'_>, req_b64: Option<String>) -> HandlerResult {
        let cfg = crate::path_tidy::crl_config(c.storage).await?;
        if cfg.ocsp_disable {
            return Ok(Some(status_only(OcspResponseStatus::Unauthorized, 401)));
        }
        let der = match req_b64 {
            Some(b64) if !b64.is_empty() => {
                let cleaned: String = b64.chars().filter(|c| !c.is_whitespace()).collect();
                let engine = base64::engine::general_purpose::STANDARD;
                let url = base64::engine::general_purpose::URL_SAFE;
                match engine.decode(&cleaned).or_else(|_| url.decode(&cleaned)) {
                    Ok(d) => d,
                    Err(_) => {
                        return Ok(Some(status_only(OcspResponseStatus::MalformedRequest, 400)))
                    }
                }
            }
            _ => c.req.raw_body.as_deref().unwrap_or_default().to_vec(),
        };
        let Ok(request) = OcspRequest::from_der(&der) else {
            return Ok(Some(status_only(OcspResponseStatus::MalformedRequest, 400)));
        };
        let list = &request.tbs_request.request_list;
        if list.is_empty() {
            return Ok(Some(status_only(OcspResponseStatus::MalformedRequest, 400)));
        }

        // The issuer every request names (one signer per response).
        let mut issuers = vec![];
        for id in c.storage.list("issuer/").await? {
            if let Some(i) = model::get::<IssuerEntry>(c.storage, &format!("issuer/{id}")).await? {
                let facts = x509::IssuerFacts::from_der(&crypto::pem_to_der(&i.certificate)?)?;
                issuers.push((i, facts));
            }
        }
        // Requests about an issuer this mount does not have get "unknown",
        // signed by the default issuer (as Vault does); mixed issuers in one
        // request cannot share a signer and are refused.
        let mut signer: Option<usize> = None;
        let mut foreign = false;
        for r in list {
            let id = &r.req_cert;
            let alg = id.hash_algorithm.oid;
            let found = issuers.iter().position(|(_, f)| {
                hash(&alg, &f.subject_der).as_deref() == Some(id.issuer_name_hash.as_bytes())
                    && hash(&alg, &f.public_key).as_deref() == Some(id.issuer_key_hash.as_bytes())
            });
            match (found, signer) {
                (None, _) => foreign = true,
                (Some(i), None) => signer = Some(i),
                (Some(i), Some(j)) if i != j => {
                    return Ok(Some(status_only(OcspResponseStatus::Unauthorized, 401)))
                }
                _ => {}
            }
        }
        if foreign {
            if signer.is_some() {
                return Ok(Some(status_only(OcspResponseStatus::Unauthorized, 401)));
            }
            let Ok(default) = model::resolve_issuer(c.storage, "default").await else {
                return Ok(Some(status_only(OcspResponseStatus::Unauthorized, 401)));
            };
            signer = issuers.iter().position(|(i, _)| i.id == default.id);
        }
        let Some(signer) = signer else {
            return Ok(Some(status_only(OcspResponseStatus::Unauthorized, 401)));
        };
        let (issuer, facts) = &issuers[signer];

        let now = self.system.now();
        let next = (cfg.ocsp_expiry > 0).then(|| now + cfg.ocsp_expiry as i64);
        let mut responses = Vec::with_capacity(list.len());
        for r in list {
            let serial_bytes = r.req_cert.serial_number.as_bytes();
            let serial = crypto::serial_string(serial_bytes);
            let status = if foreign {
                CertStatus::unknown()
            } else {
                match self
                    .crls
                    .revoked_at(c.storage, &issuer.id, serial_bytes)
                    .await?
                {
                    Some(t) => CertStatus::revoked(RevokedInfo {
                        revocation_time: OcspGeneralizedTime(x509::generalized(t)?),
                        revocation_reason: None,
                    }),
                    None => match model::get::<CertEntry>(c.storage, &format!("certs/{serial}"))
                        .await?
                    {
                        Some(e) if e.issuer_id == issuer.id => CertStatus::good(),
                        _ => CertStatus::unknown(),
                    },
                }
            };
            responses.push(SingleResponse {
                cert_id: r.req_cert.clone(),
                cert_status: status,
                this_update: OcspGeneralizedTime(x509::generalized(now)?),
                next_update: match next {
                    Some(n) => Some(OcspGeneralizedTime(x509::generalized(n)?)),
                    None => None,
                },
                single_extensions: None,
            });
        }
        let nonce: Vec<_> = request
            .tbs_request
            .request_extensions
            .iter()
            .flatten()
            .filter(|e| e.extn_id == ID_PKIX_OCSP_NONCE)
            .cloned()
            .collect();
        let tbs = ResponseData {
            version: Default::default(),
            responder_id: ResponderId::ByKey(OctetString::new(facts.key_sha1()).map_err(internal)?),
            produced_at: OcspGeneralizedTime(x509::generalized(now)?),
            responses,
            response_extensions: (!nonce.is_empty()).then_some(nonce),
        };
        let key = model::issuer_key(c.storage, issuer).await?;
        let alg = x509::signature_algorithm(&key)?;
        let tbs_der = tbs.to_der().map_err(internal)?;
        let signature = {
            use rcgen::SigningKey;
            let sig = key.sign(&tbs_der).map_err(internal)?;
            der::asn1::BitString::from_bytes(&sig).map_err(internal)?
        };
        let cert = x509_cert::Certificate::from_der(&facts.cert_der).map_err(internal)?;
        let basic = BasicOcspResponse {
            tbs_response_data: tbs,
            signature_algorithm: alg,
            signature,
            certs: Some(vec![cert]),
        };
        let der = OcspResponse {
            response_status: OcspResponseStatus::Successful,
            response_bytes: Some(ResponseBytes {
                response_type: ID_PKIX_OCSP_BASIC,
                response: OctetString::new(basic.to_der().map_err(internal)?).map_err(internal)?,
            }),
        }
        .to_der()
        .map_err(internal)?;
        Ok(Some(raw("application/ocsp-response", der)))
    }
}

pub(super) fn paths() -> Vec<Path<Pki>> {
    vec![
        Path::new("ocsp")
            .raw_body()
            .op(Operation::Update, |b: &Pki, c| Box::pin(b.ocsp_post(c)))
            .help("OCSP responder: POST a DER request (Content-Type application/ocsp-request)."),
        Path::new("ocsp/(?P<req>.+)")
            .field(Field::new(
                "req",
                FieldType::String,
                "The base64 DER OCSP request.",
            ))
            .op(Operation::Read, |b: &Pki, c| Box::pin(b.ocsp_get(c)))
            .help("OCSP responder: GET with the base64 DER request in the path."),
    ]
}
