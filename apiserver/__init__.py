"""ks-apiserver: authentication, multi-tenant RBAC, platform APIs and the Kubernetes API proxy."""
