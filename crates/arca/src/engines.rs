//! The engines this binary can mount: the one place they are registered.
//! Core knows none of them; it builds a mount of type `t` with the factory
//! registered here under `t` (its own `system`, `token` and `cubbyhole`
//! aside).

use arca_sdk::Registry;

/// Every secrets engine and auth method built into `arca`.
pub fn registry() -> Registry {
    Registry::new()
        .secrets("kv", arca_kv::new_backend)
        .secrets("pki", arca_pki::new_backend)
        .secrets("transit", arca_transit::new_backend)
        .secrets("database", arca_database::new_backend)
        .auth("userpass", arca_userpass::new_backend)
        .auth("approle", arca_approle::new_backend)
        .auth("jwt", arca_jwt::new_backend)
        .auth("cert", arca_cert::new_backend)
        .auth("ldap", arca_ldap::new_backend)
}
