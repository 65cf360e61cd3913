"""ks-controller-manager: controllers for users, workspaces, namespaces and DevOps projects."""
