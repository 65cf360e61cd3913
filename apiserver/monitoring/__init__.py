"""The monitoring API's engine: KubeSphere's named metrics as PromQL, a Prometheus client, answer shapes.

``promql`` holds the metric table and the selectors of each level, ``prometheus``
the HTTP client, ``results`` the answer KubeSphere gives (and its ranking and
paging); ``apiserver.kapis.monitoring`` serves them under
``/kapis/monitoring.kubesphere.io/v1alpha3``.
"""

from apiserver.monitoring.prometheus import Prometheus, QueryError, Result
from apiserver.monitoring.promql import Scope, expression

__all__ = ["Prometheus", "QueryError", "Result", "Scope", "expression"]
