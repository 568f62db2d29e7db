# The key service of the auto-unseal cluster: an ordinary Arca with a
# Shamir seal whose transit engine holds the key the nodes' root key is
# encrypted with. Its own unseal keys are the ones to keep offline.
storage "rocksdb" {
  path = "/var/lib/arca"
}

listener "tcp" {
  address     = "0.0.0.0:8200"
  # Compose's private network only; production: TLS (tls_cert_file, ...)
  # here and tls_ca_cert in the nodes' seal blocks.
  tls_disable = true
}

api_addr      = "http://keys:8200"
disable_mlock = true
