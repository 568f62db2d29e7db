# A single Arca server with RocksDB storage. Vault's config shape.
storage "rocksdb" {
  path = "/var/lib/arca/data"
}

listener "tcp" {
  address       = "0.0.0.0:8200"
  tls_cert_file = "/etc/arca/tls/server.crt"
  tls_key_file  = "/etc/arca/tls/server.key"
}

api_addr          = "https://arca.example.internal:8200"
log_level         = "info"
default_lease_ttl = "768h"
max_lease_ttl     = "768h"
