"""ks-installer: the operator that watches the ClusterConfiguration and runs the roles."""
