"""The `sys/` tools through hvac's generic calls (hvac has no dedicated
methods for them): random bytes, hashes equal to hashlib's, host-info, the
sanitized configuration, in-flight requests, the leader and HA status, and a
400 (InvalidRequest) for an unknown algorithm. Run by
`crates/arca/tests/sys_tools.rs` as `python -c SCRIPT ADDR TOKEN`; prints
`SYS TOOLS OK` when every check held.
"""
import base64, hashlib, sys
import hvac
from hvac.exceptions import InvalidRequest

addr, token = sys.argv[1], sys.argv[2]
c = hvac.Client(url=addr, token=token)

r = c.write_data("sys/tools/random/24", data={"format": "hex"})
assert len(r["data"]["random_bytes"]) == 48, r
bytes.fromhex(r["data"]["random_bytes"])

data = b"hvac hashes this"
for alg, py in [("sha2-256", "sha256"), ("sha2-512", "sha512"), ("sha3-384", "sha3_384")]:
    r = c.write_data("sys/tools/hash/" + alg, data={"input": base64.b64encode(data).decode()})
    assert r["data"]["sum"] == hashlib.new(py, data).hexdigest(), (alg, r)

try:
    c.write_data("sys/tools/hash/whirlpool", data={"input": "aGk="})
    raise SystemExit("an unknown algorithm must be refused")
except InvalidRequest as e:
    assert "unsupported hash algorithm" in str(e), e

h = c.read("sys/host-info")
assert h["data"]["memory"]["total"] > 0, h
assert h["data"]["host"]["hostname"], h

s = c.read("sys/config/state/sanitized")
assert s["data"]["storage"]["type"] == "rocksdb", s
assert s["data"]["listeners"][0]["type"] == "tcp", s

f = c.adapter.get("/v1/sys/in-flight-req")
assert any(v["request_path"] == "/v1/sys/in-flight-req" for v in f.values()), f

leader = c.sys.read_leader_status()
assert leader["ha_enabled"] is False, leader
ha = c.read("sys/ha-status")
assert ha["data"]["nodes"][0]["active_node"] is True, ha

print("SYS TOOLS OK")
