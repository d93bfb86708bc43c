"""An AD Connect lab inside a throwaway network namespace (``unshare -n``), for e2e tests and the benchmark.

Run as ``unshare -n python tests/e2e/adsync_lab.py SPEC.json``: it brings ``lo`` up, adds nft
drop rules (the "filtered" ports), starts the DNS servers (dnsmasq healthy / brown-out,
a dead socket) and the domain controllers' listeners, runs ``opsbook adsync check`` with
the given arguments in-process and prints ``{"code": ..., "wall_s": ..., "report": {...}}``.
Nothing leaves the namespace: it has only its own loopback interface.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.e2e.ad_peer import AdDc, dc_leaf  # noqa: E402
from tests.e2e.dnsmasq_peer import (  # noqa: E402
    DeadServer,
    brownout_zone,
    dnsmasq,
    healthy_zone,
)

DEFAULT_TCP = (53, 88, 135, 389, 445, 636, 3268)
DEFAULT_UDP = (53, 88, 389)


def namespace_setup(
    drops: Sequence[tuple[str, str, int]],
    rejects: Sequence[Sequence[Any]] = (),
    local_drops: Sequence[Sequence[Any]] = (),
) -> None:
    """Bring lo up and add the firewall — call only inside a namespace of our own.

    *drops*: (address, proto, port) dropped inbound (no answer). *rejects*: (address, proto, port,
    ICMP type) rejected inbound with that ICMP error (``admin-prohibited``, ``host-unreachable``...).
    *local_drops*: (address, proto, port) dropped on output (this host's own firewall: EPERM).
    """
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    if not drops and not rejects and not local_drops:
        return
    script = ["table inet opsbook_lab {", " chain input {", "  type filter hook input priority 0; policy accept;"]
    for address, proto, port in drops:
        script.append(f"  ip daddr {address} {proto} dport {port} drop")
    for address, proto, port, icmp in rejects:
        script.append(f"  ip daddr {address} {proto} dport {port} reject with icmp type {icmp}")
    script += [" }", " chain output {", "  type filter hook output priority 0; policy accept;"]
    for address, proto, port in local_drops:
        script.append(f"  ip daddr {address} {proto} dport {port} drop")
    script += [" }", "}"]
    subprocess.run(["nft", "-f", "-"], input="\n".join(script) + "\n", text=True, check=True)


@contextlib.contextmanager
def lab(spec: dict[str, Any]) -> Iterator[None]:
    """Start the peers described by *spec* (see :func:`main`)."""
    domain = spec["domain"]
    dcs: dict[str, str] = spec["dcs"]
    filtered = {(a, p, n) for a, p, n in spec.get("drops", [])}
    with contextlib.ExitStack() as stack:
        for server in spec["dns"]:
            kind, address, port = server["kind"], server["address"], server["port"]
            if kind == "healthy":
                stack.enter_context(dnsmasq(address, port, healthy_zone(domain, dcs)))
            elif kind == "brownout":
                stack.enter_context(dnsmasq(address, port, brownout_zone(domain, list(dcs))))
            elif kind == "dead":
                stack.enter_context(DeadServer(address, port))
        modes = spec.get("modes", {})
        for name, address in dcs.items():
            tcp = [p for p in DEFAULT_TCP if (address, "tcp", p) not in filtered]
            udp = [p for p in DEFAULT_UDP if (address, "udp", p) not in filtered]
            stack.enter_context(
                AdDc(
                    address,
                    tcp_ports=tcp,
                    udp_ports=udp,
                    name=name,
                    modes=modes.get(address),
                    tls_leaf=dc_leaf(name, address),
                )
            )
        yield


def run_check(args: Sequence[str]) -> tuple[int, float, dict[str, Any]]:
    """``opsbook adsync check ARGS -f json`` in-process: (exit code, wall seconds, JSON report)."""
    from opsbook.cli.app import main

    buffer = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(buffer):
        code = main(["adsync", "check", *args, "-f", "json"])
    wall = time.perf_counter() - start
    return code, wall, json.loads(buffer.getvalue())


def main(argv: Sequence[str]) -> int:
    """Entry point inside the namespace: SPEC.json holds domain, dcs, dns, drops and args."""
    spec = json.loads(Path(argv[0]).read_text())
    namespace_setup(
        [tuple(d) for d in spec.get("drops", [])],  # type: ignore[misc]
        spec.get("rejects", []),
        spec.get("local_drops", []),
    )
    with lab(spec):
        code, wall, report = run_check(spec["args"])
    sys.__stdout__.write(json.dumps({"code": code, "wall_s": wall, "report": report}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
