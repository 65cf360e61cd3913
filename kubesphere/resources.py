"""The resource catalog: where each kind the platform touches lives in the API.

A :class:`Resource` knows its group, version, plural, kind and scope, and
builds request paths from them; the constants below are every resource the
installer, the controllers and the apiserver name in code.  Plural-named
constants (``ROLEBINDINGS``) follow the API's own plural.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, *, namespace: str | None = None, name: str | None = None, subresource: str = "") -> str:
        """``/api[s]/...[/namespaces/<ns>]/<plural>[/<name>[/<subresource>]]``."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if not name:
            return base
        return f"{base}/{name}/{subresource}" if subresource else f"{base}/{name}"

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


IAM = "iam.kubesphere.io"
TENANT = "tenant.kubesphere.io"
DEVOPS = "devops.kubesphere.io"
INSTALLER = "installer.kubesphere.io"
RBAC = "rbac.authorization.k8s.io"

# core/v1
NAMESPACES = Resource("", "v1", "namespaces", "Namespace")
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap", True)
SECRETS = Resource("", "v1", "secrets", "Secret", True)
PODS = Resource("", "v1", "pods", "Pod", True)
SERVICES = Resource("", "v1", "services", "Service", True)
SERVICEACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount", True)
NODES = Resource("", "v1", "nodes", "Node")
EVENTS = Resource("", "v1", "events", "Event", True)
PVCS = Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True)
RESOURCEQUOTAS = Resource("", "v1", "resourcequotas", "ResourceQuota", True)
# workloads, leases
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment", True)
STATEFULSETS = Resource("apps", "v1", "statefulsets", "StatefulSet", True)
DAEMONSETS = Resource("apps", "v1", "daemonsets", "DaemonSet", True)
JOBS = Resource("batch", "v1", "jobs", "Job", True)
CRONJOBS = Resource("batch", "v1", "cronjobs", "CronJob", True)
INGRESSES = Resource("networking.k8s.io", "v1", "ingresses", "Ingress", True)
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease", True)
CSRS = Resource("certificates.k8s.io", "v1", "certificatesigningrequests", "CertificateSigningRequest")
# RBAC
ROLES = Resource(RBAC, "v1", "roles", "Role", True)
ROLEBINDINGS = Resource(RBAC, "v1", "rolebindings", "RoleBinding", True)
CLUSTERROLES = Resource(RBAC, "v1", "clusterroles", "ClusterRole")
CLUSTERROLEBINDINGS = Resource(RBAC, "v1", "clusterrolebindings", "ClusterRoleBinding")
# iam.kubesphere.io
USERS = Resource(IAM, "v1alpha2", "users", "User")
LOGINRECORDS = Resource(IAM, "v1alpha2", "loginrecords", "LoginRecord")
GLOBALROLES = Resource(IAM, "v1alpha2", "globalroles", "GlobalRole")
GLOBALROLEBINDINGS = Resource(IAM, "v1alpha2", "globalrolebindings", "GlobalRoleBinding")
WORKSPACEROLES = Resource(IAM, "v1alpha2", "workspaceroles", "WorkspaceRole")
WORKSPACEROLEBINDINGS = Resource(IAM, "v1alpha2", "workspacerolebindings", "WorkspaceRoleBinding")
ROLEBASES = Resource(IAM, "v1alpha2", "rolebases", "RoleBase")
GROUPS = Resource(IAM, "v1alpha2", "groups", "Group")
GROUPBINDINGS = Resource(IAM, "v1alpha2", "groupbindings", "GroupBinding")
# tenant, devops, installer
WORKSPACES = Resource(TENANT, "v1alpha1", "workspaces", "Workspace")
WORKSPACETEMPLATES = Resource(TENANT, "v1alpha2", "workspacetemplates", "WorkspaceTemplate")
DEVOPSPROJECTS = Resource(DEVOPS, "v1alpha3", "devopsprojects", "DevOpsProject")
CLUSTERCONFIGURATIONS = Resource(INSTALLER, "v1alpha1", "clusterconfigurations", "ClusterConfiguration", True)


def now_rfc3339() -> str:
    """Now, as Kubernetes writes times (``2026-01-02T03:04:05Z``)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    """Now, as a MicroTime (``2026-01-02T03:04:05.123456Z``; Lease renewals use it)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def owner_reference(obj: Obj, *, controller: bool = True) -> Obj:
    """An ownerReference to ``obj`` (which must carry apiVersion, kind, name and uid)."""
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }
