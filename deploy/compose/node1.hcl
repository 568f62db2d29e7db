# Node 1 of the compose cluster. Every node lists all three as
# retry_join targets: an uninitialized node keeps asking until one of them
# is the leader, then joins when an operator unseals it.
storage "raft" {
  path    = "/var/lib/arca"
  node_id = "node1"
  retry_join { leader_api_addr = "http://arca1:8200" }
  retry_join { leader_api_addr = "http://arca2:8200" }
  retry_join { leader_api_addr = "http://arca3:8200" }
}

listener "tcp" {
  address         = "0.0.0.0:8200"
  cluster_address = "0.0.0.0:8201"
  # Compose's private network only. Production: TLS on both ports
  # (tls_cert_file/tls_key_file here; cluster_cert_file/cluster_key_file/
  # cluster_ca_file in the storage block), see docs/cluster.md.
  tls_disable     = true
}

api_addr      = "http://arca1:8200"
cluster_addr  = "http://arca1:8201"
disable_mlock = true
