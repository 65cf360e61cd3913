"""ks-installer: the operator that watches the ClusterConfiguration and runs the roles.

Public surface: :func:`installer.cli.main` (the ``ks-installer`` command) and the
pieces tests and embedders use: :class:`installer.settings.Settings`,
:func:`installer.components.load_table` and :func:`installer.operator.run_operator`.
"""

__version__ = "0.2.0"
