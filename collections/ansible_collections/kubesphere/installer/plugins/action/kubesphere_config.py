# Copyright: kubesphere-installer maintainers
# Apache License 2.0
"""``kubesphere.installer.kubesphere_config`` in the controller (see module_utils/inprocess.py)."""

from __future__ import annotations

from ansible_collections.kubesphere.installer.plugins.module_utils.inprocess import InProcessAction
from ansible_collections.kubesphere.installer.plugins.modules import kubesphere_config


class ActionModule(InProcessAction):
    module = kubesphere_config
