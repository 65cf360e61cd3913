"""The platform layer that the installer, the controllers and the apiserver stand on.

Everything here is shared on purpose and imports none of the product packages:

* :mod:`kubesphere.kubeconfig` — where credentials come from (one order for every process);
* :mod:`kubesphere.errors` — one rule for API failures: retry later, or give up;
* :mod:`kubesphere.resources` — the resource catalog and its request paths;
* :mod:`kubesphere.rest` — blocking JSON calls over the generated client's pool;
* :mod:`kubesphere.leases` — Lease leader election, for threads and for asyncio;
* :mod:`kubesphere.config` — the ``kubesphere.yaml`` schema and its defaults.

``docs/architecture.md`` says who may import what; ``make lint`` enforces it.
"""
