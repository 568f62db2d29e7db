//! `roles/:name` (read, write, delete) and `roles/` (list).

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use crate::backend::Pki;
use crate::model;
use crate::role::Role;

impl Pki {
    async fn read_role(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        Ok(model::get::<Role>(c.storage, &format!("role/{name}"))
            .await?
            .map(|r| Response::data(r.to_json())))
    }

    async fn write_role(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        let key = format!("role/{name}");
        let mut role = model::get::<Role>(c.storage, &key)
            .await?
            .unwrap_or_default();
        role.update(&c.data)?;
        model::put(c.storage, &key, &role).await?;
        Ok(Some(Response::data(role.to_json())))
    }

    async fn delete_role(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        c.storage.delete(&format!("role/{name}")).await?;
        Ok(None)
    }

    async fn list_roles(&self, c: Ctx<'_>) -> HandlerResult {
        let keys = c.storage.list("role/").await?;
        if keys.is_empty() {
            return Ok(None);
        }
        Ok(Some(Response::list(keys)))
    }

    async fn role_exists(&self, c: Ctx<'_>) -> Result<bool, LogicalError> {
        let name = c.data.str_or("name", "")?;
        Ok(c.storage.get(&format!("role/{name}")).await?.is_some())
    }
}

pub(super) fn paths() -> Vec<Path<Pki>> {
    use FieldType::*;
    let fields = [
        ("ttl", Duration, "Default lifetime of issued certificates."),
        (
            "max_ttl",
            Duration,
            "Longest lifetime a request may ask for.",
        ),
        (
            "allow_localhost",
            Bool,
            "Allow localhost and localdomain (default true).",
        ),
        (
            "allowed_domains",
            CommaStringSlice,
            "Domains names may be in.",
        ),
        (
            "allow_bare_domains",
            Bool,
            "Allow the allowed domains themselves.",
        ),
        (
            "allow_subdomains",
            Bool,
            "Allow subdomains of the allowed domains.",
        ),
        (
            "allow_glob_domains",
            Bool,
            "Treat * in allowed domains as a glob.",
        ),
        (
            "allow_wildcard_certificates",
            Bool,
            "Allow wildcard names like *.example.com (default true).",
        ),
        ("allow_any_name", Bool, "Allow any name."),
        (
            "enforce_hostnames",
            Bool,
            "Names must be valid hostnames (default true).",
        ),
        ("allow_ip_sans", Bool, "Allow IP SANs (default true)."),
        (
            "allowed_uri_sans",
            CommaStringSlice,
            "URI SANs allowed (globs).",
        ),
        (
            "server_flag",
            Bool,
            "serverAuth extended key usage (default true).",
        ),
        (
            "client_flag",
            Bool,
            "clientAuth extended key usage (default true).",
        ),
        (
            "key_type",
            String,
            "rsa (default), ec, ed25519 or any (sign only).",
        ),
        ("key_bits", Int, "Key size."),
        (
            "key_usage",
            CommaStringSlice,
            "Key usages (DigitalSignature, KeyEncipherment, ...).",
        ),
        (
            "ext_key_usage",
            CommaStringSlice,
            "Extra extended key usages.",
        ),
        (
            "no_store",
            Bool,
            "Do not store issued certificates (cannot be revoked by serial).",
        ),
        (
            "generate_lease",
            Bool,
            "Attach a lease to issued certificates.",
        ),
        (
            "require_cn",
            Bool,
            "Requests must give a common name (default true).",
        ),
        (
            "use_csr_common_name",
            Bool,
            "sign: use the CSR's common name when the request gives none (default true).",
        ),
        (
            "use_csr_sans",
            Bool,
            "sign: use the CSR's SANs when the request gives none (default true).",
        ),
        (
            "organization",
            CommaStringSlice,
            "O of issued certificates.",
        ),
        ("ou", CommaStringSlice, "OU of issued certificates."),
        ("country", CommaStringSlice, "C of issued certificates."),
        ("locality", CommaStringSlice, "L of issued certificates."),
        ("province", CommaStringSlice, "ST of issued certificates."),
        (
            "not_before_duration",
            Duration,
            "Backdating of NotBefore (default 30s).",
        ),
        (
            "issuer_ref",
            String,
            "The issuer that signs (default: the default issuer).",
        ),
    ];
    let mut role = Path::new(r"roles/(?P<name>\w(([\w.-]+)?\w)?)").field(Field::new(
        "name",
        String,
        "The role's name.",
    ));
    for (n, t, h) in fields {
        role = role.field(Field::new(n, t, h));
    }
    vec![
        Path::new("roles/?")
            .op(Operation::List, |b: &Pki, c| Box::pin(b.list_roles(c)))
            .help("List the roles."),
        role.op(Operation::Read, |b: &Pki, c| Box::pin(b.read_role(c)))
            .op(Operation::Update, |b: &Pki, c| Box::pin(b.write_role(c)))
            .op(Operation::Create, |b: &Pki, c| Box::pin(b.write_role(c)))
            .op(Operation::Delete, |b: &Pki, c| Box::pin(b.delete_role(c)))
            .existence(|b: &Pki, c| Box::pin(b.role_exists(c)))
            .help("A role: which names, key types, lifetimes and usages issuance allows."),
    ]
}
