//! The identity store through real clients: `identity/` listed as a
//! builtin mount that cannot be disabled; a userpass login creating an
//! entity with an alias (found again on the next login, never twice);
//! group policies applying to an existing token at request time (set,
//! removed, inherited through a parent group); cycles refused; a disabled
//! entity's tokens and logins refused until it is enabled again; a deleted
//! entity's tokens refused and its memberships gone; token roles binding
//! tokens to an entity alias; hvac's identity methods and an AppRole login
//! (alias = role id).

mod common;

use common::{learning_path_setup, run_python_ok, Server};
use serde_json::{json, Value};

const READONLY: &str = r#"path "secret/data/*" { capabilities = ["read"] }
path "secret/metadata/*" { capabilities = ["read", "list"] }"#;

fn login(server: &Server, user: &str, pass: &str) -> Value {
    server.bao().without_token().json(&[
        "login",
        "-method=userpass",
        "-format=json",
        "-no-store",
        &format!("username={user}"),
        &format!("password={pass}"),
    ])
}

#[test]
fn bao_entities_groups_and_request_time_policies() {
    let server = Server::start();
    let init = server.init_and_unseal();
    let root = server.bao().with_token(&init.root_token);

    // identity/ is a builtin mount: listed, not removable, not mountable.
    let mounts = root.json(&["secrets", "list", "-format=json"]);
    assert_eq!(mounts["identity/"]["type"], "identity", "{mounts}");
    assert!(mounts["identity/"]["accessor"]
        .as_str()
        .unwrap()
        .starts_with("identity_"));
    root.run(&["secrets", "disable", "identity"])
        .api_error(400, "cannot unmount");
    root.run(&["secrets", "enable", "-path=ident2", "identity"])
        .api_error(403, "not mountable");
    root.run(&["secrets", "tune", "-max-lease-ttl=1h", "identity/"])
        .api_error(400, "cannot tune");
    // Nothing listed yet: 404, as Vault answers an empty list.
    let (status, _) = server.http(
        "LIST",
        "/v1/identity/group/id",
        Some(&init.root_token),
        None,
    );
    assert_eq!(status, 404);

    learning_path_setup(&server, &init.root_token, "userpass", READONLY);
    let accessor = root.json(&["auth", "list", "-format=json"])["userpass/"]["accessor"]
        .as_str()
        .unwrap()
        .to_string();
    root.run(&["write", "auth/userpass/users/alice", "password=pw1"])
        .ok();

    // The first login creates the entity; the second finds it.
    let l = login(&server, "alice", "pw1");
    let eid = l["auth"]["entity_id"].as_str().unwrap().to_string();
    assert!(!eid.is_empty(), "{l}");
    assert!(l["auth"]["identity_policies"].is_null(), "{l}");
    let token = l["auth"]["client_token"].as_str().unwrap().to_string();
    let l2 = login(&server, "alice", "pw1");
    assert_eq!(l2["auth"]["entity_id"], eid.as_str(), "{l2}");
    let ids = root.json(&["list", "-format=json", "identity/entity/id"]);
    assert_eq!(ids, json!([eid]), "one entity for two logins");
    let alice = server.bao().with_token(&token);
    let look = alice.json(&["token", "lookup", "-format=json"]);
    assert_eq!(look["data"]["entity_id"], eid.as_str(), "{look}");

    let e = root.json(&[
        "write",
        "-format=json",
        "identity/lookup/entity",
        "alias_name=alice",
        &format!("alias_mount_accessor={accessor}"),
    ]);
    assert_eq!(e["data"]["id"], eid.as_str(), "{e}");
    assert!(e["data"]["name"].as_str().unwrap().starts_with("entity_"));
    let a = &e["data"]["aliases"][0];
    assert_eq!(a["name"], "alice", "{e}");
    assert_eq!(a["mount_type"], "userpass", "{e}");
    assert_eq!(a["mount_path"], "auth/userpass/", "{e}");
    assert_eq!(a["canonical_id"], eid.as_str(), "{e}");

    // Without a policy alice cannot read; a group gives her one, at once.
    alice
        .run(&["kv", "get", "secret/app"])
        .api_error(403, "permission denied");
    let g = root.json(&[
        "write",
        "-format=json",
        "identity/group",
        "name=readers",
        "policies=readonly",
        &format!("member_entity_ids={eid}"),
    ]);
    let readers = g["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(g["data"]["name"], "readers", "{g}");
    let kv = alice.json(&["kv", "get", "-format=json", "secret/app"]);
    assert_eq!(kv["data"]["data"]["password"], "s3cret", "{kv}");
    alice
        .run(&["kv", "put", "secret/app", "password=mine"])
        .api_error(403, "permission denied");
    let look = alice.json(&["token", "lookup", "-format=json"]);
    assert_eq!(
        look["data"]["identity_policies"],
        json!(["readonly"]),
        "{look}"
    );
    assert_eq!(look["data"]["policies"], json!(["default"]), "{look}");
    let l3 = login(&server, "alice", "pw1");
    assert_eq!(l3["auth"]["identity_policies"], json!(["readonly"]), "{l3}");
    assert_eq!(
        l3["auth"]["policies"],
        json!(["default", "readonly"]),
        "{l3}"
    );
    assert_eq!(l3["auth"]["token_policies"], json!(["default"]), "{l3}");

    // Removing the group's policy takes the access away from the same token.
    root.run(&["write", "identity/group/name/readers", "policies="])
        .ok();
    alice
        .run(&["kv", "get", "secret/app"])
        .api_error(403, "permission denied");
    // A parent group's policies reach the members of its member groups.
    let p = root.json(&[
        "write",
        "-format=json",
        "identity/group",
        "name=staff",
        "policies=readonly",
        &format!("member_group_ids={readers}"),
    ]);
    let staff = p["data"]["id"].as_str().unwrap().to_string();
    alice.run(&["kv", "get", "secret/app"]).ok();
    let e = root.json(&["read", "-format=json", &format!("identity/entity/id/{eid}")]);
    assert_eq!(e["data"]["direct_group_ids"], json!([readers]), "{e}");
    assert_eq!(e["data"]["inherited_group_ids"], json!([staff]), "{e}");
    let gr = root.json(&["read", "-format=json", "identity/group/name/readers"]);
    assert_eq!(gr["data"]["parent_group_ids"], json!([staff]), "{gr}");
    assert_eq!(gr["data"]["alias"], json!({}), "{gr}");
    let st = root.json(&[
        "read",
        "-format=json",
        &format!("identity/group/id/{staff}"),
    ]);
    assert_eq!(st["data"]["member_group_ids"], json!([readers]), "{st}");
    // A cycle is refused and changes nothing.
    root.run(&[
        "write",
        &format!("identity/group/id/{readers}"),
        &format!("member_group_ids={staff}"),
    ])
    .api_error(400, "cyclic relationship");
    let gr2 = root.json(&["read", "-format=json", "identity/group/name/readers"]);
    assert_eq!(gr2["data"]["member_group_ids"], Value::Null, "{gr2}");

    // A disabled entity: its tokens and logins are refused, not revoked.
    root.run(&[
        "write",
        &format!("identity/entity/id/{eid}"),
        "disabled=true",
    ])
    .ok();
    alice
        .run(&["token", "lookup"])
        .api_error(403, "permission denied");
    server
        .bao()
        .without_token()
        .run(&[
            "login",
            "-method=userpass",
            "username=alice",
            "password=pw1",
        ])
        .api_error(403, "permission denied");
    root.run(&[
        "write",
        &format!("identity/entity/id/{eid}"),
        "disabled=false",
    ])
    .ok();
    alice.run(&["kv", "get", "secret/app"]).ok();

    // Bad input: clear errors, nothing stored.
    root.run(&["write", "identity/entity", "name=bad", "policies=root"])
        .api_error(400, "root");
    root.run(&[
        "write",
        "identity/entity-alias",
        "name=x",
        "mount_accessor=auth_userpass_nothere",
    ])
    .api_error(400, "invalid mount accessor");
    root.run(&[
        "write",
        "identity/group-alias",
        "name=x",
        &format!("mount_accessor={accessor}"),
        &format!("canonical_id={readers}"),
    ])
    .api_error(400, "internal group");
    root.run(&[
        "write",
        "identity/group",
        "name=ext",
        "type=external",
        &format!("member_entity_ids={eid}"),
    ])
    .api_error(400, "external groups");
    root.run(&["read", "identity/entity/name/bad"]).code(2);
    let names = root.json(&["list", "-format=json", "identity/entity/name"]);
    assert_eq!(names.as_array().unwrap().len(), 1, "{names}");

    // An operator-made entity with its own policies and an alias for bob:
    // bob's first login lands on it.
    root.run(&["write", "auth/userpass/users/bob", "password=pw2"])
        .ok();
    let made = root.json(&[
        "write",
        "-format=json",
        "identity/entity",
        "name=bob-entity",
        "policies=readonly",
        "metadata=team=blue",
    ]);
    let bob_id = made["data"]["id"].as_str().unwrap().to_string();
    let al = root.json(&[
        "write",
        "-format=json",
        "identity/entity-alias",
        "name=bob",
        &format!("mount_accessor={accessor}"),
        &format!("canonical_id={bob_id}"),
    ]);
    assert_eq!(al["data"]["canonical_id"], bob_id.as_str(), "{al}");
    // The same alias again is an update of it, not a second one.
    root.run(&[
        "write",
        "identity/entity-alias",
        "name=bob",
        &format!("mount_accessor={accessor}"),
        &format!("canonical_id={eid}"),
    ])
    .api_error(400, "already has an alias");
    let lb = login(&server, "bob", "pw2");
    assert_eq!(lb["auth"]["entity_id"], bob_id.as_str(), "{lb}");
    assert_eq!(lb["auth"]["identity_policies"], json!(["readonly"]), "{lb}");
    let e = root.json(&["read", "-format=json", "identity/entity/name/bob-entity"]);
    assert_eq!(e["data"]["metadata"], json!({"team": "blue"}), "{e}");
    // Updating an existing entity answers 204 (no body).
    let up = root.run(&[
        "write",
        "identity/entity/name/bob-entity",
        "policies=default",
    ]);
    assert!(up.ok().stdout.contains("Success"));

    // Deleting alice's entity: her tokens are refused, memberships gone;
    // her next login makes a new entity.
    root.run(&["delete", &format!("identity/entity/id/{eid}")])
        .ok();
    alice
        .run(&["token", "lookup"])
        .api_error(403, "permission denied");
    let gr = root.json(&["read", "-format=json", "identity/group/name/readers"]);
    assert_eq!(gr["data"]["member_entity_ids"], json!([]), "{gr}");
    let l4 = login(&server, "alice", "pw1");
    let eid2 = l4["auth"]["entity_id"].as_str().unwrap();
    assert!(!eid2.is_empty() && eid2 != eid, "{l4}");

    // Token roles bind tokens to an entity alias on the token mount.
    server.http_ok(
        "PUT",
        "/v1/sys/policies/acl/creator",
        Some(&init.root_token),
        Some(&json!({ "policy": r#"path "auth/token/create" { capabilities = ["update"] }"# })),
    );
    root.run(&[
        "write",
        "auth/token/roles/svc",
        "allowed_policies=default,creator",
        "allowed_entity_aliases=svc-*",
    ])
    .ok();
    root.run(&["token", "create", "-role=svc", "-entity-alias=other"])
        .api_error(400, "invalid 'entity_alias'");
    root.run(&["token", "create", "-entity-alias=svc-a"])
        .api_error(400, "only allowed in combination with token role");
    let t = root.json(&[
        "token",
        "create",
        "-format=json",
        "-role=svc",
        "-entity-alias=svc-a",
        "-policy=creator",
    ]);
    let svc_entity = t["auth"]["entity_id"].as_str().unwrap().to_string();
    assert!(!svc_entity.is_empty(), "{t}");
    let t2 = root.json(&[
        "token",
        "create",
        "-format=json",
        "-role=svc",
        "-entity-alias=svc-a",
    ]);
    assert_eq!(t2["auth"]["entity_id"], svc_entity.as_str(), "{t2}");
    // A child token inherits its parent's entity.
    let child = server
        .bao()
        .with_token(t["auth"]["client_token"].as_str().unwrap())
        .json(&["token", "create", "-format=json", "-policy=default"]);
    assert_eq!(child["auth"]["entity_id"], svc_entity.as_str(), "{child}");
    let r = root.json(&["read", "-format=json", "auth/token/roles/svc"]);
    assert_eq!(r["data"]["allowed_entity_aliases"], json!(["svc-*"]), "{r}");

    // The identity store survives a restart (sealed and unsealed again).
    let mut server = server;
    server.restart();
    server.unseal_with(&init.keys_hex);
    let root = server.bao().with_token(&init.root_token);
    let gr = root.json(&["read", "-format=json", "identity/group/name/staff"]);
    assert_eq!(gr["data"]["member_group_ids"], json!([readers]), "{gr}");
    let lb = login(&server, "bob", "pw2");
    assert_eq!(lb["auth"]["entity_id"], bob_id.as_str(), "{lb}");
}

#[test]
fn hvac_identity_methods_and_approle_alias() {
    let server = Server::start();
    let init = server.init_and_unseal();
    let script = r#"
import sys, hvac
addr, root = sys.argv[1:3]
c = hvac.Client(url=addr, token=root)
ident = c.secrets.identity
e = ident.create_or_update_entity(name="app-entity", policies=["p1"], metadata={"team": "red"})
eid = e["data"]["id"]
assert e["data"]["name"] == "app-entity", e
r = ident.read_entity(entity_id=eid)
assert r["data"]["policies"] == ["p1"] and r["data"]["metadata"] == {"team": "red"}, r
assert r["data"]["namespace_id"] == "root" and r["data"]["disabled"] is False, r
assert ident.read_entity_by_name(name="app-entity")["data"]["id"] == eid
assert ident.list_entities()["data"]["keys"] == [eid]
assert ident.list_entities(method="GET")["data"]["key_info"][eid]["name"] == "app-entity"

c.sys.enable_auth_method("approle")
acc = c.sys.list_auth_methods()["approle/"]["accessor"]
c.auth.approle.create_or_update_approle("worker", token_policies=["default"])
role_id = c.auth.approle.read_role_id("worker")["data"]["role_id"]
secret_id = c.auth.approle.generate_secret_id("worker")["data"]["secret_id"]
login = hvac.Client(url=addr).auth.approle.login(role_id=role_id, secret_id=secret_id)
got = login["auth"]["entity_id"]
assert got and got != eid, login
found = ident.lookup_entity(alias_name=role_id, alias_mount_accessor=acc)
alias = found["data"]["aliases"][0]
assert found["data"]["id"] == got, found
assert alias["name"] == role_id and alias["metadata"] == {"role_name": "worker"}, alias
assert alias["mount_type"] == "approle", alias

# An alias made by hand moves the role's logins onto app-entity.
a = ident.create_or_update_entity_alias(name="by-hand", canonical_id=eid, mount_accessor=acc)
aid = a["data"]["id"]
assert ident.read_entity_alias(alias_id=aid)["data"]["canonical_id"] == eid
assert aid in ident.list_entity_aliases()["data"]["keys"]
ident.delete_entity_alias(alias_id=aid)

g = ident.create_or_update_group(name="ops", policies=["p2"], member_entity_ids=[eid, got])
gid = g["data"]["id"]
rg = ident.read_group(group_id=gid)
assert sorted(rg["data"]["member_entity_ids"]) == sorted([eid, got]), rg
assert rg["data"]["type"] == "internal" and rg["data"]["policies"] == ["p2"], rg
assert ident.read_group_by_name(name="ops")["data"]["id"] == gid
assert ident.lookup_group(name="ops")["data"]["id"] == gid
assert ident.list_groups()["data"]["keys"] == [gid]
ext = ident.create_or_update_group(name="ext", group_type="external", policies=["p3"])
ga = ident.create_or_update_group_alias(name="cn=ext", mount_accessor=acc, canonical_id=ext["data"]["id"])
assert ident.read_group_alias(alias_id=ga["data"]["id"])["data"]["canonical_id"] == ext["data"]["id"]
assert ident.read_group(group_id=ext["data"]["id"])["data"]["alias"]["name"] == "cn=ext"
ident.delete_group(group_id=gid)
ident.delete_entity(entity_id=eid)
try:
    ident.read_entity(entity_id=eid)
    raise SystemExit("a deleted entity should be gone")
except hvac.exceptions.InvalidPath:
    pass
print("hvac identity: ok")
"#;
    run_python_ok(
        &server,
        script,
        &[&server.addr, &init.root_token],
        "hvac identity: ok",
    );
}
