"""KubeSphere's named metrics and the PromQL each one means, per level.

The console asks for metrics by name (``node_cpu_usage``, ``namespace_pod_count``);
KubeSphere 3.4 answers each with one PromQL expression over the series that
node-exporter, kube-state-metrics, the kubelet and the control plane export, and
over the recording rules its Prometheus carries (``node:node_num_cpu:sum``,
``apiserver:up:sum``, ...).  The names, the series and the rule names are the
contract with that Prometheus, so they are KubeSphere's; the expressions are
written here from what each metric means.

In the table, ``<S>`` stands for the selector of the object asked about (a node,
a namespace, ...) and ``<K>`` for the second selector some levels use (the
workload kind's series, the pods of a workload); ``Scope.selectors`` builds both.
Every value put into a selector is a PromQL string literal (quoted and escaped),
so a filter cannot change the shape of the expression.
"""

# ruff: noqa: E501 -- a table of PromQL expressions reads best one expression to a line
from __future__ import annotations

import json
from dataclasses import dataclass

S, K = "<S>", "<K>"
#: Interfaces that are not a pod's own network (CNI bridges, tunnels, loopback).
_VIRTUAL = r"^(cali.+|tunl.+|dummy.+|kube.+|flannel.+|cni.+|docker.+|veth.+|lo.*)"
_DISK = r'device=~"/dev/.*", device!~"/dev/loop\\d+", job="node-exporter"'
_NODE_NOT_READY = '(kube_node_status_condition{condition="Ready",status=~"unknown|false"} > 0)'
_KSM = 'job="kube-state-metrics"'


def _net(direction: str, extra: str = "") -> str:
    """Per-second bytes through pods' own interfaces, summed by namespace."""
    return (
        f"sum by (namespace) (irate(container_network_{direction}_bytes_total"
        f'{{namespace!="", pod!="", interface!~"{_VIRTUAL}", job="kubelet"{extra}}}[5m]))'
    )


def _in_ns(series: str, by: str, agg: str = "sum") -> str:
    """A kube-state-metrics series of namespaced objects, totalled per namespace or workspace."""
    return f'{agg} by ({by}) ({series}{{namespace!=""}} * on (namespace) group_left(workspace) kube_namespace_labels{{{S}}})'


def _zero_filled(expr: str, by: str) -> str:
    """``expr``, with 0 for every namespace (or workspace) in scope that has no series."""
    return f"{expr} or on({by}) max by({by}) (kube_namespace_labels{{{S}}} * 0)"


def _phase(by: str, phase: str) -> str:
    return _zero_filled(
        f'sum by ({by}) (kube_pod_status_phase{{{phase}, namespace!=""}}'
        f" * on (namespace) group_left(workspace) kube_namespace_labels{{{S}}})",
        by,
    )


#: Pods that are scheduled, not finished, and not both Running and Ready (creating ones excluded).
_ABNORMAL_PODS = (
    f'(kube_pod_info{{node!=""}} unless on (pod, namespace) (kube_pod_status_phase{{{_KSM}, phase="Succeeded"}}>0)'
    f' unless on (pod, namespace) ((kube_pod_status_ready{{{_KSM}, condition="true"}}>0)'
    f' and on (pod, namespace) (kube_pod_status_phase{{{_KSM}, phase="Running"}}>0))'
    f' unless on (pod, namespace) (kube_pod_container_status_waiting_reason{{{_KSM}, reason="ContainerCreating"}}>0))'
)

CLUSTER: dict[str, str] = {
    "cluster_cpu_utilisation": ":node_cpu_utilisation:avg1m",
    "cluster_cpu_usage": "round(:node_cpu_utilisation:avg1m * sum(node:node_num_cpu:sum), 0.001)",
    "cluster_cpu_total": "sum(node:node_num_cpu:sum)",
    "cluster_memory_utilisation": ":node_memory_utilisation:",
    "cluster_memory_available": "sum(node:node_memory_bytes_available:sum)",
    "cluster_memory_total": "sum(node:node_memory_bytes_total:sum)",
    "cluster_memory_usage_wo_cache": "sum(node:node_memory_bytes_total:sum) - sum(node:node_memory_bytes_available:sum)",
    "cluster_net_utilisation": ":node_net_utilisation:sum_irate",
    "cluster_net_bytes_transmitted": "sum(node:node_net_bytes_transmitted:sum_irate)",
    "cluster_net_bytes_received": "sum(node:node_net_bytes_received:sum_irate)",
    "cluster_disk_read_iops": "sum(node:data_volume_iops_reads:sum)",
    "cluster_disk_write_iops": "sum(node:data_volume_iops_writes:sum)",
    "cluster_disk_read_throughput": "sum(node:data_volume_throughput_bytes_read:sum)",
    "cluster_disk_write_throughput": "sum(node:data_volume_throughput_bytes_written:sum)",
    "cluster_disk_size_usage": (
        f"sum(max(node_filesystem_size_bytes{{{_DISK}}} - node_filesystem_avail_bytes{{{_DISK}}})"
        " by (device, instance))"
    ),
    "cluster_disk_size_utilisation": "cluster:disk_utilization:ratio",
    "cluster_disk_size_capacity": f"sum(max(node_filesystem_size_bytes{{{_DISK}}}) by (device, instance))",
    "cluster_disk_size_available": f"sum(max(node_filesystem_avail_bytes{{{_DISK}}}) by (device, instance))",
    "cluster_disk_inode_total": "sum(node:node_inodes_total:)",
    "cluster_disk_inode_usage": "sum(node:node_inodes_total:) - sum(node:node_inodes_free:)",
    "cluster_disk_inode_utilisation": "cluster:disk_inode_utilization:ratio",
    "cluster_namespace_count": "count(kube_namespace_labels)",
    "cluster_pod_count": "cluster:pod:sum",
    "cluster_pod_quota": (
        f'sum(max(kube_node_status_capacity{{resource="pods"}}) by (node) unless on (node) {_NODE_NOT_READY})'
    ),
    "cluster_pod_utilisation": "cluster:pod_utilization:ratio",
    "cluster_pod_running_count": "cluster:pod_running:count",
    "cluster_pod_succeeded_count": (
        'count(kube_pod_info unless on (pod) (kube_pod_status_phase{phase=~"Failed|Pending|Unknown|Running"} > 0)'
        f" unless on (node) {_NODE_NOT_READY})"
    ),
    "cluster_pod_abnormal_count": "cluster:pod_abnormal:sum",
    "cluster_node_online": 'sum(kube_node_status_condition{condition="Ready",status="true"})',
    "cluster_node_offline": "cluster:node_offline:sum",
    "cluster_node_total": 'sum(kube_node_status_condition{condition="Ready"})',
    **{
        f"cluster_{name}_count": f"{agg}({series})"
        for name, series, agg in (
            ("cronjob", "kube_cronjob_labels", "sum"),
            ("pvc", "kube_persistentvolumeclaim_info", "sum"),
            ("daemonset", "kube_daemonset_labels", "sum"),
            ("deployment", "kube_deployment_labels", "sum"),
            ("endpoint", "kube_endpoint_labels", "sum"),
            ("hpa", "kube_horizontalpodautoscaler_labels", "sum"),
            ("job", "kube_job_labels", "sum"),
            ("statefulset", "kube_statefulset_labels", "sum"),
            ("replicaset", "kube_replicaset_labels", "count"),
            ("service", "kube_service_info", "sum"),
            ("secret", "kube_secret_info", "sum"),
            ("pv", "kube_persistentvolume_labels", "sum"),
            ("ingresses_extensions", "kube_ingress_labels", "sum"),
        )
    },
    **{
        f"cluster_load{n}": f'sum(node_load{n}{{job="node-exporter"}}) / sum(node:node_num_cpu:sum)'
        for n in (1, 5, 15)
    },
    "cluster_pod_abnormal_ratio": "cluster:pod_abnormal:ratio",
    "cluster_node_offline_ratio": "cluster:node_offline:ratio",
}


def _node_rule(rule: str) -> str:
    return f"{rule}{{{S}}}"


_POD_NODE = f"node_namespace_pod:kube_pod_info:{{{S}}}"
_DEVICE = 'device!~"/dev/loop\\\\d+",device=~"/dev/.*",job="node-exporter"'


def _device_sum(series: str) -> str:
    return (
        f"sum by(device, node, host_ip, role) ({series}{{{_DEVICE}}}"
        f" * on(namespace, pod) group_left(node, host_ip, role) {_POD_NODE})"
    )


NODE: dict[str, str] = {
    **{
        name: _node_rule(rule)
        for name, rule in (
            ("node_cpu_utilisation", "node:node_cpu_utilisation:avg1m"),
            ("node_cpu_total", "node:node_num_cpu:sum"),
            ("node_memory_utilisation", "node:node_memory_utilisation:"),
            ("node_memory_available", "node:node_memory_bytes_available:sum"),
            ("node_memory_total", "node:node_memory_bytes_total:sum"),
            ("node_net_utilisation", "node:node_net_utilisation:sum_irate"),
            ("node_net_bytes_transmitted", "node:node_net_bytes_transmitted:sum_irate"),
            ("node_net_bytes_received", "node:node_net_bytes_received:sum_irate"),
            ("node_disk_read_iops", "node:data_volume_iops_reads:sum"),
            ("node_disk_write_iops", "node:data_volume_iops_writes:sum"),
            ("node_disk_read_throughput", "node:data_volume_throughput_bytes_read:sum"),
            ("node_disk_write_throughput", "node:data_volume_throughput_bytes_written:sum"),
            ("node_disk_size_available", "node:disk_space_available:"),
            ("node_disk_size_utilisation", "node:disk_space_utilization:ratio"),
            ("node_disk_inode_total", "node:node_inodes_total:"),
            ("node_disk_inode_utilisation", "node:disk_inode_utilization:ratio"),
            ("node_pod_count", "node:pod_count:sum"),
            ("node_pod_utilisation", "node:pod_utilization:ratio"),
            ("node_pod_running_count", "node:pod_running:count"),
            ("node_pod_succeeded_count", "node:pod_succeeded:count"),
            ("node_pod_abnormal_count", "node:pod_abnormal:count"),
            ("node_load1", "node:load1:ratio"),
            ("node_load5", "node:load5:ratio"),
            ("node_load15", "node:load15:ratio"),
            ("node_pod_abnormal_ratio", "node:pod_abnormal:ratio"),
            ("node_pleg_quantile", "node_quantile:kubelet_pleg_relist_duration_seconds:histogram_quantile"),
        )
    },
    "node_cpu_usage": f"round(node:node_cpu_utilisation:avg1m{{{S}}} * node:node_num_cpu:sum{{{S}}}, 0.001)",
    "node_memory_usage_wo_cache": f"node:node_memory_bytes_total:sum{{{S}}} - node:node_memory_bytes_available:sum{{{S}}}",
    "node_disk_size_capacity": (
        f"sum(max(node_filesystem_size_bytes{{{_DISK}}} * on (namespace, pod) group_left(node) {_POD_NODE})"
        " by (device, node)) by (node)"
    ),
    "node_disk_size_usage": (
        f"sum(max((node_filesystem_size_bytes{{{_DISK}}} - node_filesystem_avail_bytes{{{_DISK}}})"
        f" * on (namespace, pod) group_left(node) {_POD_NODE}) by (device, node)) by (node)"
    ),
    "node_disk_inode_usage": f"node:node_inodes_total:{{{S}}} - node:node_inodes_free:{{{S}}}",
    "node_pod_quota": (
        f'max(kube_node_status_capacity{{resource="pods",{S}}}) by (node) unless on (node) {_NODE_NOT_READY}'
    ),
    "node_device_size_usage": (
        f"{_device_sum('node_filesystem_size_bytes')} - {_device_sum('node_filesystem_avail_bytes')}"
    ),
    "node_device_size_utilisation": (
        f"1 - {_device_sum('node_filesystem_avail_bytes')} / {_device_sum('node_filesystem_size_bytes')}"
    ),
}

#: Object counts per namespace and per workspace: metric suffix, kube-state-metrics series, aggregation.
_COUNTS = (
    ("ingresses_extensions", "kube_ingress_labels", "sum"),
    ("cronjob", "kube_cronjob_labels", "sum"),
    ("pvc", "kube_persistentvolumeclaim_info", "sum"),
    ("daemonset", "kube_daemonset_labels", "sum"),
    ("deployment", "kube_deployment_labels", "sum"),
    ("endpoint", "kube_endpoint_labels", "sum"),
    ("hpa", "kube_horizontalpodautoscaler_labels", "sum"),
    ("job", "kube_job_labels", "sum"),
    ("statefulset", "kube_statefulset_labels", "sum"),
    ("replicaset", "kube_replicaset_labels", "count"),
    ("service", "kube_service_info", "sum"),
    ("secret", "kube_secret_info", "sum"),
)


def _ws_net(direction: str) -> str:
    return _zero_filled(
        f"sum by (workspace) ({_net(direction)} * on (namespace) group_left(workspace) kube_namespace_labels{{{S}}})",
        "workspace",
    )


WORKSPACE: dict[str, str] = {
    "workspace_cpu_usage": (
        f'round(sum by (workspace) (namespace:container_cpu_usage_seconds_total:sum_rate{{namespace!="", {S}}}), 0.001)'
    ),
    "workspace_memory_usage": f'sum by (workspace) (namespace:container_memory_usage_bytes:sum{{namespace!="", {S}}})',
    "workspace_memory_usage_wo_cache": (
        f'sum by (workspace) (namespace:container_memory_usage_bytes_wo_cache:sum{{namespace!="", {S}}})'
    ),
    "workspace_net_bytes_transmitted": _ws_net("transmit"),
    "workspace_net_bytes_received": _ws_net("receive"),
    "workspace_pod_count": _phase("workspace", 'phase!~"Failed|Succeeded"'),
    "workspace_pod_running_count": _phase("workspace", 'phase="Running"'),
    "workspace_pod_succeeded_count": _phase("workspace", 'phase="Succeeded"'),
    "workspace_pod_abnormal_count": (
        f"count by (workspace) ({_ABNORMAL_PODS} * on (namespace) group_left(workspace)(kube_namespace_labels{{{S}}}))"
    ),
    **{f"workspace_{name}_count": _in_ns(series, "workspace", agg) for name, series, agg in _COUNTS},
    "workspace_pod_abnormal_ratio": (
        f"count by (workspace) ({_ABNORMAL_PODS} * on (namespace) group_left(workspace) kube_namespace_labels{{{S}}})"
        f' / sum by (workspace) (kube_pod_status_phase{{phase!="Succeeded", namespace!=""}}'
        f" * on (namespace) group_left(workspace)(kube_namespace_labels{{{S}}}))"
    ),
}


def _ns_net(direction: str) -> str:
    inner = _net(direction).removeprefix("sum by (namespace) (").removesuffix(")")
    return _zero_filled(
        f"sum by (namespace) ({inner} * on (namespace) group_left(workspace) kube_namespace_labels{{{S}}})",
        "namespace",
    )


def _hard(resource: str) -> str:
    """The tightest hard quota of ``resource`` in the namespace (KubeSphere's own ``quota`` object excluded)."""
    return (
        f'min by (namespace) (kube_resourcequota{{resourcequota!="quota", type="hard", namespace!="", '
        f'resource="{resource}"}} * on (namespace) group_left(workspace) kube_namespace_labels{{{S}}})'
    )


NAMESPACE: dict[str, str] = {
    "namespace_cpu_usage": f'round(namespace:container_cpu_usage_seconds_total:sum_rate{{namespace!="", {S}}}, 0.001)',
    "namespace_memory_usage": f'namespace:container_memory_usage_bytes:sum{{namespace!="", {S}}}',
    "namespace_memory_usage_wo_cache": f'namespace:container_memory_usage_bytes_wo_cache:sum{{namespace!="", {S}}}',
    "namespace_net_bytes_transmitted": _ns_net("transmit"),
    "namespace_net_bytes_received": _ns_net("receive"),
    "namespace_pod_count": _phase("namespace", 'phase!~"Failed|Succeeded"'),
    "namespace_pod_running_count": _phase("namespace", 'phase="Running"'),
    "namespace_pod_succeeded_count": _phase("namespace", 'phase="Succeeded"'),
    "namespace_pod_abnormal_count": f'namespace:pod_abnormal:count{{namespace!="", {S}}}',
    "namespace_pod_abnormal_ratio": f'namespace:pod_abnormal:ratio{{namespace!="", {S}}}',
    "namespace_memory_limit_hard": _hard("limits.memory"),
    "namespace_cpu_limit_hard": _hard("limits.cpu"),
    "namespace_pod_count_hard": _hard("count/pods"),
    **{
        f"namespace_{name}_count": _in_ns(series, "namespace", agg)
        for name, series, agg in (
            *_COUNTS[1:],
            ("configmap", "kube_configmap_info", "sum"),
            ("ingresses_extensions", "kube_ingress_labels", "sum"),
            ("s2ibuilder", "s2i_s2ibuilder_created", "sum"),
        )
    },
}


def _replicas(kind: str, series: str) -> str:
    """A kube-state-metrics replica series of one workload kind, labelled ``workload="<Kind>:<name>"``."""
    lower = kind.lower()
    return (
        f'label_join(sum (label_join(label_replace({series}{{{K}}}, "owner_kind", "{kind}", "", ""),'
        f' "workload", "", "{lower}")) by (namespace, owner_kind, workload), "workload", ":", "owner_kind", "workload")'
    )


WORKLOAD: dict[str, str] = {
    "workload_cpu_usage": f"round(namespace:workload_cpu_usage:sum{{{S}}}, 0.001)",
    "workload_memory_usage": f"namespace:workload_memory_usage:sum{{{S}}}",
    "workload_memory_usage_wo_cache": f"namespace:workload_memory_usage_wo_cache:sum{{{S}}}",
    "workload_net_bytes_transmitted": f"namespace:workload_net_bytes_transmitted:sum_irate{{{S}}}",
    "workload_net_bytes_received": f"namespace:workload_net_bytes_received:sum_irate{{{S}}}",
    "workload_deployment_replica": _replicas("Deployment", "kube_deployment_spec_replicas"),
    "workload_deployment_replica_available": _replicas(
        "Deployment", "kube_deployment_status_replicas_available"
    ),
    "workload_statefulset_replica": _replicas("StatefulSet", "kube_statefulset_replicas"),
    "workload_statefulset_replica_available": _replicas(
        "StatefulSet", "kube_statefulset_status_replicas_current"
    ),
    "workload_daemonset_replica": _replicas("DaemonSet", "kube_daemonset_status_desired_number_scheduled"),
    "workload_daemonset_replica_available": _replicas("DaemonSet", "kube_daemonset_status_number_available"),
    "workload_deployment_unavailable_replicas_ratio": f"namespace:deployment_unavailable_replicas:ratio{{{S}}}",
    "workload_daemonset_unavailable_replicas_ratio": f"namespace:daemonset_unavailable_replicas:ratio{{{S}}}",
    "workload_statefulset_unavailable_replicas_ratio": f"namespace:statefulset_unavailable_replicas:ratio{{{S}}}",
}

#: A per-pod series, joined with the pod's owner (``<S>`` selects it) and node (``<K>`` selects the pods).
_POD_JOIN = (
    f" * on (namespace, pod) group_left(owner_kind, owner_name) kube_pod_owner{{{S}}}"
    f" * on (namespace, pod) group_left(node) kube_pod_info{{{K}}}"
)
_KUBELET = 'job="kubelet", pod!="", image!=""'


def _pod_net(direction: str) -> str:
    return (
        f"sum by (namespace, pod) (irate(container_network_{direction}_bytes_total"
        f'{{pod!="", interface!~"{_VIRTUAL}", job="kubelet"}}[5m])){_POD_JOIN}'
    )


POD: dict[str, str] = {
    "pod_cpu_usage": (
        f"round(sum by (namespace, pod) (irate(container_cpu_usage_seconds_total{{{_KUBELET}}}[5m])){_POD_JOIN}, 0.001)"
    ),
    "pod_memory_usage": f"sum by (namespace, pod) (container_memory_usage_bytes{{{_KUBELET}}}){_POD_JOIN}",
    "pod_memory_usage_wo_cache": f"sum by (namespace, pod) (container_memory_working_set_bytes{{{_KUBELET}}}){_POD_JOIN}",
    "pod_net_bytes_transmitted": _pod_net("transmit"),
    "pod_net_bytes_received": _pod_net("receive"),
}

_CONTAINER = f'job="kubelet", container!="POD", container!="", image!="", {S}'
CONTAINER: dict[str, str] = {
    "container_cpu_usage": (
        f"round(sum by (namespace, pod, container) (irate(container_cpu_usage_seconds_total{{{_CONTAINER}}}[5m])), 0.001)"
    ),
    **{
        name: f"sum by (namespace, pod, container) ({series}{{{_CONTAINER}}})"
        for name, series in (
            ("container_memory_usage", "container_memory_usage_bytes"),
            ("container_memory_usage_wo_cache", "container_memory_working_set_bytes"),
            ("container_processes_usage", "container_processes"),
            ("container_threads_usage", "container_threads"),
        )
    },
}


def _volume(expr: str) -> str:
    return (
        f"max by (namespace, persistentvolumeclaim) ({expr})"
        f" * on (namespace, persistentvolumeclaim) group_left (storageclass) kube_persistentvolumeclaim_info{{{S}}}"
    )


PVC: dict[str, str] = {
    "pvc_inodes_available": _volume("kubelet_volume_stats_inodes_free"),
    "pvc_inodes_used": _volume("kubelet_volume_stats_inodes_used"),
    "pvc_inodes_total": _volume("kubelet_volume_stats_inodes"),
    "pvc_inodes_utilisation": _volume("kubelet_volume_stats_inodes_used / kubelet_volume_stats_inodes"),
    "pvc_bytes_available": _volume("kubelet_volume_stats_available_bytes"),
    "pvc_bytes_used": _volume("kubelet_volume_stats_used_bytes"),
    "pvc_bytes_total": _volume("kubelet_volume_stats_capacity_bytes"),
    "pvc_bytes_utilisation": _volume("kubelet_volume_stats_used_bytes / kubelet_volume_stats_capacity_bytes"),
}


def _node_ip(expr: str, source: str = "instance", pattern: str = "(.*):.*") -> str:
    return f'label_replace({expr}, "node_ip", "$1", "{source}", "{pattern}")'


ETCD: dict[str, str] = {
    "etcd_server_list": _node_ip('up{job="etcd"}'),
    "etcd_server_total": 'count(up{job="etcd"})',
    "etcd_server_up_total": "etcd:up:sum",
    "etcd_server_has_leader": _node_ip("etcd_server_has_leader"),
    "etcd_server_is_leader": _node_ip("etcd_server_is_leader"),
    "etcd_server_leader_changes": _node_ip(
        "etcd:etcd_server_leader_changes_seen:sum_changes", "node", "(.*)"
    ),
    **{
        f"etcd_server_proposals_{name}": f"avg(etcd:etcd_server_proposals_{rule})"
        for name, rule in (
            ("failed_rate", "failed:sum_irate"),
            ("applied_rate", "applied:sum_irate"),
            ("committed_rate", "committed:sum_irate"),
            ("pending_count", "pending:sum"),
        )
    },
    "etcd_mvcc_db_size": "avg(etcd:etcd_mvcc_db_total_size:sum)",
    "etcd_network_client_grpc_received_bytes": "sum(etcd:etcd_network_client_grpc_received_bytes:sum_irate)",
    "etcd_network_client_grpc_sent_bytes": "sum(etcd:etcd_network_client_grpc_sent_bytes:sum_irate)",
    "etcd_grpc_call_rate": "sum(etcd:grpc_server_started:sum_irate)",
    "etcd_grpc_call_failed_rate": "sum(etcd:grpc_server_handled:sum_irate)",
    "etcd_grpc_server_msg_received_rate": "sum(etcd:grpc_server_msg_received:sum_irate)",
    "etcd_grpc_server_msg_sent_rate": "sum(etcd:grpc_server_msg_sent:sum_irate)",
    "etcd_disk_wal_fsync_duration": "avg(etcd:etcd_disk_wal_fsync_duration:avg)",
    "etcd_disk_wal_fsync_duration_quantile": "avg(etcd:etcd_disk_wal_fsync_duration:histogram_quantile) by (quantile)",
    "etcd_disk_backend_commit_duration": "avg(etcd:etcd_disk_backend_commit_duration:avg)",
    "etcd_disk_backend_commit_duration_quantile": (
        "avg(etcd:etcd_disk_backend_commit_duration:histogram_quantile) by (quantile)"
    ),
}

APISERVER: dict[str, str] = {
    "apiserver_up_sum": "apiserver:up:sum",
    "apiserver_request_rate": "apiserver:apiserver_request_total:sum_irate",
    "apiserver_request_by_verb_rate": "apiserver:apiserver_request_total:sum_verb_irate",
    "apiserver_request_latencies": "apiserver:apiserver_request_duration:avg",
    "apiserver_request_by_verb_latencies": "apiserver:apiserver_request_duration:avg_by_verb",
}

SCHEDULER: dict[str, str] = {
    "scheduler_up_sum": "scheduler:up:sum",
    "scheduler_schedule_attempts": "scheduler:scheduler_schedule_attempts:sum",
    "scheduler_schedule_attempt_rate": "scheduler:scheduler_schedule_attempts:sum_rate",
    "scheduler_e2e_scheduling_latency": "scheduler:scheduler_e2e_scheduling_duration:avg",
    "scheduler_e2e_scheduling_latency_quantile": "scheduler:scheduler_e2e_scheduling_duration:histogram_quantile",
}

COMPONENTS = {"etcd": ETCD, "apiserver": APISERVER, "scheduler": SCHEDULER}


def literal(value: str) -> str:
    """``value`` as a PromQL string literal (JSON's escapes are PromQL's)."""
    return json.dumps(value, ensure_ascii=False)


WORKLOAD_KINDS = {"deployment": "Deployment", "statefulset": "StatefulSet", "daemonset": "DaemonSet"}


@dataclass(frozen=True)
class Scope:
    """What a request asks about: the level and the names and filter in its path and query."""

    level: str
    resources_filter: str = ".*"
    node: str = ""
    workspace: str = ""
    namespace: str = ""
    workload_kind: str = ""
    workload: str = ""
    pod: str = ""
    container: str = ""
    pvc: str = ""
    storageclass: str = ""
    #: ``ns/pod|ns/pod``: the pods of a node's pod list to answer for.
    namespaced_pods: tuple[tuple[str, str], ...] = ()

    def selectors(self, metric: str) -> tuple[str, str]:
        """The (``<S>``, ``<K>``) selectors for ``metric`` at this scope."""
        f = literal(self.resources_filter)
        if self.level == "node":
            return (f"node={literal(self.node)}" if self.node else f"node=~{f}"), ""
        if self.level == "workspace":
            if self.workspace:
                return f"workspace={literal(self.workspace)}", ""
            return f'workspace=~{f}, workspace!=""', ""
        if self.level == "namespace":
            if self.workspace:
                return f"workspace={literal(self.workspace)}, namespace=~{f}", ""
            return (f"namespace={literal(self.namespace)}" if self.namespace else f"namespace=~{f}"), ""
        if self.level == "workload":
            return self._workload(metric)
        if self.level == "pod":
            return self._pod()
        if self.level == "container":
            c = f"container={literal(self.container)}" if self.container else f"container=~{f}"
            return f"pod={literal(self.pod)}, namespace={literal(self.namespace)}, {c}", ""
        if self.level == "pvc":
            if self.namespace:
                p = (
                    f"persistentvolumeclaim={literal(self.pvc)}"
                    if self.pvc
                    else f"persistentvolumeclaim=~{f}"
                )
                return f"namespace={literal(self.namespace)}, {p}", ""
            if self.storageclass:
                return f"storageclass={literal(self.storageclass)}, persistentvolumeclaim=~{f}", ""
            return "", ""
        return "", ""

    def _workload(self, metric: str) -> tuple[str, str]:
        ns = literal(self.namespace)
        kind = WORKLOAD_KINDS.get(self.workload_kind, ".*")
        first = f"namespace={ns}, workload=~{literal(f'{kind}:({self.resources_filter})')}"
        second = ""
        for lower in ("deployment", "statefulset", "daemonset"):
            if lower in metric:
                second = f'namespace={ns}, {lower}!="", {lower}=~{literal(self.resources_filter)}'
        return first, second

    def _pod(self) -> tuple[str, str]:
        owner = ""
        if self.workload:
            if self.workload_kind == "deployment":
                owner = f'owner_kind="ReplicaSet", owner_name=~{literal(f"^{self.workload}-[^-]{{1,10}}$")}'
            elif self.workload_kind in ("statefulset", "daemonset"):
                kind = WORKLOAD_KINDS[self.workload_kind]
                owner = f'owner_kind="{kind}", owner_name={literal(self.workload)}'
        if self.namespace:
            pod = f"pod={literal(self.pod)}" if self.pod else f"pod=~{literal(self.resources_filter)}"
            return owner, f"{pod}, namespace={literal(self.namespace)}"
        parts: list[str] = []
        if self.node:
            if self.pod:
                ns, sep, name = self.pod.partition("/")
                if not sep:
                    ns, name = "", self.pod
                head = f"namespace={literal(ns)}," if ns else ""
                return owner, f"{head}pod={literal(name)}, node={literal(self.node)}"
            parts.append(f"node={literal(self.node)}")
            if self.resources_filter:
                parts.append(f"pod=~{literal(self.resources_filter)}")
        namespaces = [ns for ns, _ in self.namespaced_pods if ns]
        pods = [p for _, p in self.namespaced_pods]
        if namespaces:
            parts.append(f"namespace=~{literal('|'.join(namespaces))}")
        if pods:
            parts.append(f"pod=~{literal('|'.join(pods))}")
        return owner, ",".join(parts)


def expression(template: str, scope: Scope, metric: str) -> str:
    first, second = scope.selectors(metric)
    return template.replace(S, first).replace(K, second)
