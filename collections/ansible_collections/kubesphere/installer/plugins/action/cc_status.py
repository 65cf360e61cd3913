# Copyright: kubesphere-installer maintainers
# Apache License 2.0
"""``kubesphere.installer.cc_status`` in the controller (see module_utils/inprocess.py)."""

from __future__ import annotations

from ansible_collections.kubesphere.installer.plugins.module_utils.inprocess import InProcessAction
from ansible_collections.kubesphere.installer.plugins.modules import cc_status


class ActionModule(InProcessAction):
    module = cc_status
