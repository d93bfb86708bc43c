"""The README's main job, ``opsbook run runbooks/examples/local.yaml`` (``make run``), end to end.

The suite reads this host's resolv.conf; ``OPSBOOK_RESOLV_CONF`` points it at one written
here, whose nameservers are real dnsmasq peers on loopback addresses (port 53, as the
resolver library uses) in front of a fake domain controller's listening ports. The first
server is healthy, the second a brown-out (answers NOERROR without data): the suite must
find it. Every output format is read back by a parser we did not write.
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from junitparser import JUnitXml
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.dnsmasq_peer import brownout_zone, dnsmasq, domain_controller, healthy_zone
from tests.helpers import REPO, run_cli
from tests.peers import need_binary, need_root

pytestmark = pytest.mark.e2e

LOCAL = str(REPO / "runbooks" / "examples" / "local.yaml")
DOMAIN = "corp.test"
HEALTHY, BROWNOUT, DC_ADDRESS = "127.0.77.1", "127.0.77.2", "127.0.77.10"
DOCKER_SOCKET = "/var/run/docker.sock"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    need_root()  # port 53
    need_binary("dnsmasq")
    folder = tmp_path_factory.mktemp("local-suite")
    resolv = folder / "resolv.conf"
    resolv.write_text(f"# written by the test\nsearch {DOMAIN}\nnameserver {HEALTHY}\nnameserver {BROWNOUT}\n")
    dcs = {f"dc1.{DOMAIN}": DC_ADDRESS}
    with (
        dnsmasq(HEALTHY, 53, healthy_zone(DOMAIN, dcs)),
        dnsmasq(BROWNOUT, 53, brownout_zone(DOMAIN, list(dcs))),
        domain_controller(DC_ADDRESS),
    ):
        yield resolv


def env(resolv: Path) -> dict[str, str]:
    return {"OPSBOOK_RESOLV_CONF": str(resolv), "NO_COLOR": "1", "OPSBOOK_FORMAT": ""}


def test_local_suite_checks_each_dns_server_of_the_host(lab: Path) -> None:
    result = run_cli("run", LOCAL, "-f", "json", env=env(lab))
    assert result.code in (0, 1, 2), result.err
    assert "Traceback" not in result.err
    doc = json.loads(result.out)
    dns = [c for c in doc["checks"] if c["source"] == "dns"]
    assert dns, doc
    text = json.dumps(dns)
    assert HEALTHY in text and BROWNOUT in text  # both servers of the resolv.conf, each asked on its own
    assert any(c["status"] in ("WARNING", "CRITICAL") and BROWNOUT in c["target"] for c in dns), dns
    discovery = next(c for c in dns if c["id"] == "adsync.dc.discovery")
    assert f"dc1.{DOMAIN}" in discovery["summary"]
    # the resolvers entry: every nameserver asked on its own for this host's own name
    resolvers = [c for c in doc["checks"] if c["source"] == "resolvers"]
    assert {c["target"] for c in resolvers} == {f"{HEALTHY}", f"{BROWNOUT}"}, resolvers
    docker_ran = any(c["source"] == "docker-root" for c in doc["checks"])
    assert docker_ran == (os.path.exists(DOCKER_SOCKET) or os.path.exists("/etc/docker/daemon.json"))
    if not docker_ran:
        assert doc["skipped"] == [
            {"name": "docker-root", "reason": f"none of {DOCKER_SOCKET}, /etc/docker/daemon.json exists"}
        ]


def test_local_suite_in_every_format(lab: Path, tmp_path: Path) -> None:
    junit_file, textfile = tmp_path / "local.xml", tmp_path / "local.prom"
    outputs = {}
    for fmt in ("table", "json", "nagios", "junit", "prometheus"):
        result = run_cli(
            "run", LOCAL, "-f", fmt, "--junit-file", str(junit_file), "--textfile", str(textfile), env=env(lab)
        )
        assert result.code in (0, 1, 2), (fmt, result.err)
        assert "Traceback" not in result.out + result.err
        outputs[fmt] = result.out
    assert re.match(r"^(OK|WARNING|CRITICAL) +\d+ checks \(", outputs["table"].splitlines()[-1])
    assert "dns: " in outputs["table"]
    assert re.match(r"^OPSBOOK (OK|WARNING|CRITICAL) - \d+ checks: .* \| 'checks'=\d+;;;0 ", outputs["nagios"])
    cases = [case for suite in JUnitXml.fromstring(outputs["junit"]) for case in suite]
    assert any(case.classname.startswith("dns.") for case in cases)
    families = {f.name: f for f in text_string_to_metric_families(outputs["prometheus"])}
    assert {s.labels["suite_check"] for s in families["opsbook_check_status"].samples} >= {"dns"}
    # the files of the last run parse too
    assert ET.parse(junit_file).getroot().tag == "testsuites"
    assert "opsbook_last_run_timestamp_seconds" in {
        f.name for f in text_string_to_metric_families(textfile.read_text())
    }


def test_local_suite_on_a_host_without_domain_or_docker_still_reports(tmp_path: Path) -> None:
    # this is what `make run` meets on a bare machine: resolv.conf with only a nameserver, no
    # domain anywhere, (possibly) no Docker. A report, not an error: exit <= 2, no traceback.
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.77.99\n")
    for fmt in ("table", "json", "nagios", "junit", "prometheus"):
        result = run_cli("run", LOCAL, "-f", fmt, env={**env(resolv), "HOSTNAME": "bare"})
        assert result.code in (0, 1, 2), (fmt, result.out, result.err)
        assert "Traceback" not in result.out + result.err
        assert "dns" in result.out  # the skipped entry is named in every format, with why
    doc = json.loads(run_cli("run", LOCAL, "-f", "json", env=env(resolv)).out)
    import socket

    if "." not in socket.gethostname():
        skipped = {s["name"]: s["reason"] for s in doc["skipped"]}
        assert skipped["dns"].startswith("${host.domain}: no 'domain' or 'search' line in ")
