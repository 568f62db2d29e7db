"""hvac 2.4.0's `client.secrets.database` methods against a database mount at
`database/` and a PostgreSQL server: connections, dynamic roles and their
credentials (renew, revoke), static roles (rotation on demand), reset and
rotate-root, each answer checked. Run by `tests/database_postgres.rs` as
`python -c SCRIPT ADDR TOKEN CONNECTION_URL PG_USER PG_PASSWORD`; prints
`CREDS <user> <password>` and `STATIC <user> <password>` lines for the test
to try with psql, and `hvac database: done` when every check held.
"""
import sys
import hvac
from hvac.exceptions import InvalidRequest

addr, token, url, pg_user, pg_password = sys.argv[1:6]
c = hvac.Client(url=addr, token=token)
db = c.secrets.database

if "database/" not in c.sys.list_mounted_secrets_engines()["data"]:
    c.sys.enable_secrets_engine("database")

CREATE = [
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
    'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{{name}}";',
]

db.configure(
    "pg",
    "postgresql-database-plugin",
    allowed_roles=["ro", "app"],
    connection_url=url,
    username=pg_user,
    password=pg_password,
)
conn = db.read_connection("pg")["data"]
assert conn["plugin_name"] == "postgresql-database-plugin", conn
assert sorted(conn["allowed_roles"]) == ["app", "ro"], conn
assert conn["connection_details"]["username"] == pg_user, conn
assert pg_password not in repr(conn), "the connection read shows the password"
assert db.list_connections()["data"]["keys"] == ["pg"]

db.create_role("ro", "pg", CREATE, default_ttl="1h", max_ttl="24h")
role = db.read_role("ro")["data"]
assert role["default_ttl"] == 3600 and role["max_ttl"] == 86400, role
assert role["creation_statements"] == CREATE, role
assert db.list_roles()["data"]["keys"] == ["ro"]

creds = db.generate_credentials("ro")
assert creds["lease_duration"] == 3600 and creds["renewable"], creds
user, password = creds["data"]["username"], creds["data"]["password"]
assert creds["lease_id"].startswith("database/creds/ro/"), creds
print("CREDS", user, password, flush=True)
renewed = c.sys.renew_lease(creds["lease_id"], increment=600)
assert renewed["lease_duration"] == 600, renewed
c.sys.revoke_lease(creds["lease_id"])

try:
    db.generate_credentials("nope")
    raise AssertionError("credentials for an unknown role")
except InvalidRequest as e:
    assert "unknown role" in str(e), e

db.create_static_role(
    "app",
    "pg",
    "app",
    ["ALTER ROLE \"{{name}}\" WITH PASSWORD '{{password}}';"],
    rotation_period=3600,
)
static = db.read_static_role("app")["data"]
assert static["username"] == "app" and static["rotation_period"] == 3600, static
assert db.list_static_roles()["data"]["keys"] == ["app"]
first = db.get_static_credentials("app")["data"]
assert first["username"] == "app" and 0 < first["ttl"] <= 3600, first
db.rotate_static_role_credentials("app")
second = db.get_static_credentials("app")["data"]
assert second["password"] != first["password"], "rotate-role kept the password"
print("STATIC app", second["password"], flush=True)

db.reset_connection("pg")
db.rotate_root_credentials("pg")
after_root = db.generate_credentials("ro")
c.sys.revoke_lease(after_root["lease_id"])

db.delete_role("ro")
try:
    db.read_role("ro")
    raise AssertionError("deleted role still readable")
except hvac.exceptions.InvalidPath:
    pass
print("hvac database: done")
