# Node 2 of the auto-unseal compose cluster: as deploy/compose/node2.hcl,
# plus the transit seal (its token comes from BAO_TOKEN).
storage "raft" {
  path    = "/var/lib/arca"
  node_id = "node2"
  retry_join { leader_api_addr = "http://arca1:8200" }
  retry_join { leader_api_addr = "http://arca2:8200" }
  retry_join { leader_api_addr = "http://arca3:8200" }
}

listener "tcp" {
  address         = "0.0.0.0:8200"
  cluster_address = "0.0.0.0:8201"
  tls_disable     = true
}

seal "transit" {
  address    = "http://keys:8200"
  key_name   = "autounseal"
  mount_path = "transit/"
}

api_addr      = "http://arca2:8200"
cluster_addr  = "http://arca2:8201"
disable_mlock = true
