"""``opsbook serve``: opsbook as a Prometheus multi-target exporter (blackbox_exporter's pattern).

Prometheus holds the targets and asks ``/probe?module=M&target=T``; a module is a suite entry
(``runbook`` + ``with:``) whose target comes from the request. The HTTP stack (aiohttp,
prometheus_client, bcrypt) is imported only when the server starts.
"""

from __future__ import annotations

from .modules import (
    DEFAULT_MODULE_DEADLINE,
    TARGET_KEYS,
    AllowList,
    Module,
    ModuleConfig,
    TargetError,
    load_module_config,
    parse_target,
    probe_deadline,
)

__all__ = [
    "DEFAULT_MODULE_DEADLINE",
    "TARGET_KEYS",
    "AllowList",
    "Module",
    "ModuleConfig",
    "TargetError",
    "load_module_config",
    "parse_target",
    "probe_deadline",
]
