"""A real Prometheus (Debian's package) scrapes ``opsbook serve`` through the shipped relabelling example.

Targets: a TLS zoo (valid, expiring, expired, wrong CA, a listener that never answers) and a
dnsmasq lab (a healthy resolver; canary names that resolve or not). Prometheus' HTTP API must
show ``up == 1`` and opsbook's series for every target. The shipped prometheus.yml and rules
pass ``promtool check``; the shipped module file validates.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.dnsmasq_peer import dnsmasq
from tests.helpers import REPO, run_cli
from tests.peers import need_binary
from tests.serve_peer import serve
from tests.tlspeers import HangServer, TestCA, TlsServer, free_port, make_leaf

pytestmark = pytest.mark.e2e

EXAMPLES = REPO / "runbooks" / "examples" / "serve"
HOST = "127.0.117.1"  # the exporter
PROM = "127.0.117.2"  # Prometheus
DNS = "127.0.117.3"
DNS_PORT = 5317
ZOO = ("valid", "expiring", "expired", "wrong_ca")


def test_shipped_prometheus_config_and_rules_pass_promtool(tmp_path: Path) -> None:
    promtool = need_binary("promtool")
    for name in ("prometheus.yml", "opsbook-rules.yml"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    config = subprocess.run(
        [promtool, "check", "config", "prometheus.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert config.returncode == 0, config.stdout + config.stderr
    assert "1 rule files found" in config.stdout + config.stderr
    rules = subprocess.run(
        [promtool, "check", "rules", "opsbook-rules.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "6 rules found" in rules.stdout + rules.stderr


def test_shipped_module_file_validates(tmp_path: Path) -> None:
    ca = tmp_path / "corp-root.pem"
    ca.write_text(TestCA("Corp Root").cert_pem.decode())
    config = tmp_path / "exporter.yaml"
    config.write_text((EXAMPLES / "exporter.yaml").read_text().replace("/etc/pki/corp-root.pem", str(ca)))
    result = run_cli("serve", "--config", str(config), "--validate", env={"CORP_WINRM_ISSUER": "Corp Issuing"})
    assert result.code == 0, result.err
    assert "OK, 5 modules" in result.out
    web = tmp_path / "web.yaml"
    web.write_text("basic_auth_users:\n" + (EXAMPLES / "web.yaml").read_text().split("basic_auth_users:\n")[1])
    result = run_cli(
        "serve",
        "--config",
        str(config),
        "--web-config",
        str(web),
        "--validate",
        env={"CORP_WINRM_ISSUER": "Corp Issuing"},
    )
    assert result.code == 0, result.err


def prometheus_config(exporter: str, targets: dict[str, list[str]], rules: Path) -> dict[str, object]:
    """The shipped prometheus.yml with our targets and exporter address (its relabelling kept as is)."""
    doc = yaml.safe_load((EXAMPLES / "prometheus.yml").read_text())
    doc["global"] = {"scrape_interval": "2s", "scrape_timeout": "2s", "evaluation_interval": "2s"}
    doc["rule_files"] = [str(rules)]
    jobs = []
    for job in doc["scrape_configs"]:
        name = job["job_name"]
        if name == "opsbook_exporter":
            job["static_configs"] = [{"targets": [exporter]}]
        elif name in targets:
            job["static_configs"] = [{"targets": targets[name]}]
            job.pop("scrape_interval", None)
            rewrite = [r for r in job["relabel_configs"] if r.get("target_label") == "__address__"]
            assert rewrite, f"{name}: the example must send the scrape to the exporter"
            for rule in rewrite:
                rule["replacement"] = exporter
        else:
            continue
        jobs.append(job)
    doc["scrape_configs"] = jobs
    return doc


@contextlib.contextmanager
def prometheus(config: Path, data: Path) -> Iterator[str]:
    binary = need_binary("prometheus")
    port = free_port(PROM)
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address={PROM}:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://{PROM}:{port}"
    try:
        end = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > end:
                err = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
                raise AssertionError(f"prometheus did not start: {err}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def query(url: str, expr: str) -> list[dict[str, object]]:
    with urllib.request.urlopen(f"{url}/api/v1/query?query={urllib.parse.quote(expr)}", timeout=5) as resp:
        doc = json.load(resp)
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


def test_prometheus_scrapes_the_exporter_through_the_example_relabelling(tmp_path: Path) -> None:
    need_binary("prometheus")
    need_binary("dnsmasq")
    ca = TestCA("Corp Issuing CA")
    ca_file = ca.write(tmp_path)
    with contextlib.ExitStack() as stack:
        zoo: dict[str, str] = {}
        for i, kind in enumerate(ZOO, start=10):
            host = f"127.0.117.{i}"
            leaf = make_leaf(kind, ca, "srv.corp.test", names=["srv.corp.test", host])
            zoo[kind] = stack.enter_context(TlsServer(leaf, mode="identify", host=host)).target
        zoo["hung"] = stack.enter_context(HangServer("127.0.117.20")).target
        stack.enter_context(
            dnsmasq(DNS, DNS_PORT, ["--local=/corp.test/", "--host-record=intranet.corp.test,10.1.2.3"])
        )
        modules = tmp_path / "exporter.yaml"
        modules.write_text(f"""\
version: 1
modules:
  winrm_https:
    runbook: winrm
    with: {{ca-file: {ca_file}, warn-days: 30}}
    allow: [127.0.117.0/24]
  dns_canary:
    runbook: dns
    with: {{dns: ["{DNS}:{DNS_PORT}"], timeout: 2, host-name: intranet.corp.test}}
    allow: ["*.corp.test"]
""")
        served = stack.enter_context(serve(modules, listen=f"{HOST}:0"))
        exporter = served.url.removeprefix("http://")
        targets = {"opsbook_winrm": list(zoo.values()), "opsbook_dns": ["intranet.corp.test", "missing.corp.test"]}
        (tmp_path / "rules.yml").write_text((EXAMPLES / "opsbook-rules.yml").read_text())
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump(prometheus_config(exporter, targets, tmp_path / "rules.yml")))
        url = stack.enter_context(prometheus(config, tmp_path / "data"))
        expected = {(job, t) for job, ts in targets.items() for t in ts} | {("opsbook_exporter", exporter)}

        def state() -> dict[tuple[str, str], float]:
            return {
                (r["metric"]["job"], r["metric"]["instance"]): float(r["value"][1])  # type: ignore[index]
                for r in query(url, 'up{job=~"opsbook_.*"}')
            }

        end = time.monotonic() + 40
        while time.monotonic() < end and (set(state()) != expected or not all(v == 1 for v in state().values())):
            time.sleep(0.5)
        assert set(state()) == expected and all(v == 1 for v in state().values()), (state(), served.log)

        # Over every scrape so far: a healthy target succeeded (a scrape that overran on a loaded
        # machine does not count against it), a broken one never did.
        success = {
            r["metric"]["instance"]: float(r["value"][1])  # type: ignore[index]
            for r in query(url, "max_over_time(probe_success[5m])")
        }
        assert success[zoo["valid"]] == 1 and success[zoo["expiring"]] == 1  # WARNING still succeeds
        assert success[zoo["expired"]] == 0 and success[zoo["wrong_ca"]] == 0 and success[zoo["hung"]] == 0
        assert success["intranet.corp.test"] == 1
        assert success["missing.corp.test"] == 1  # a canary no server resolves is a WARNING (dns check)
        status = {
            (r["metric"]["instance"], r["metric"]["check"]): float(r["value"][1])  # type: ignore[index]
            for r in query(url, "opsbook_check_status")
        }
        assert status[(zoo["valid"], "winrm.cert.expiry")] == 0
        assert status[(zoo["expiring"], "winrm.cert.expiry")] == 1
        assert status[(zoo["expired"], "winrm.cert.expiry")] == 2
        assert status[(zoo["wrong_ca"], "winrm.cert.chain")] == 2
        assert {inst for inst, _ in status} == set(zoo.values()) | {"intranet.corp.test", "missing.corp.test"}
        assert max(v for (inst, _), v in status.items() if inst == "missing.corp.test") == 1
        assert max(v for (inst, _), v in status.items() if inst == "intranet.corp.test") == 0
        durations = query(url, 'probe_duration_seconds{job="opsbook_winrm"}')
        assert len(durations) == len(zoo) and all(float(r["value"][1]) < 2 for r in durations)  # type: ignore[index]

        # Prometheus scrapes the exporter's own /metrics on its own schedule: the scrape after the
        # first dns_canary probe may still be to come.
        def own_modules() -> set[str]:
            own = query(url, 'opsbook_exporter_probe_requests_total{job="opsbook_exporter"}')
            return {r["metric"]["module"] for r in own}  # type: ignore[index]

        end = time.monotonic() + 20
        while time.monotonic() < end and own_modules() != {"winrm_https", "dns_canary"}:
            time.sleep(0.5)
        assert own_modules() == {"winrm_https", "dns_canary"}
