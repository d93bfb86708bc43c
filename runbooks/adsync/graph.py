"""Tenant sync freshness through Microsoft Graph (MSAL client credentials).

Interface fixed for the adsync CLI; implementation pending.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..model import CheckResult
from ..secrets import Secret

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
DEFAULT_GRAPH_ENDPOINT = "https://graph.microsoft.com"


@dataclass
class GraphOptions:
    """How to reach Microsoft Graph and what counts as too old (seconds: warn, crit)."""

    tenant_id: str
    client_id: str
    client_secret: Secret | None = None
    client_cert: Path | None = None
    authority_host: str = DEFAULT_AUTHORITY_HOST
    graph_endpoint: str = DEFAULT_GRAPH_ENDPOINT
    max_sync_age: tuple[float, float] = (3600.0, 3 * 3600.0)
    max_password_sync_age: tuple[float, float] = (3600.0, 3 * 3600.0)
    timeout: float = 10.0
    count_provisioning_errors: bool = False


def parse_age_thresholds(text: str) -> tuple[float, float]:
    """Parse ``WARN`` or ``WARN,CRIT`` durations (``90m``, ``3h``, ``45s``, ``1d``) to seconds."""
    raise NotImplementedError


def check_tenant(options: GraphOptions) -> list[CheckResult]:
    """Token, organization sync state, last sync and last password sync as check results."""
    raise NotImplementedError
