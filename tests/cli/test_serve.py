"""``opsbook serve`` as a real process on loopback, probing real TLS peers (tests/tlspeers.py)."""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import json
import os
import signal
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import run_cli
from tests.serve_peer import Served, serve, wait_for
from tests.tlspeers import HangServer, TestCA, TlsServer

SECRET = "Corp-Secret-Issuer-7f3a"
ENV = {"SERVE_TEST_ISSUER": SECRET}


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Metric name -> [(labels, value)], parsed by prometheus_client (so the text must be valid)."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def value(text: str, name: str) -> float:
    found = samples(text)[name]
    assert len(found) == 1, found
    return found[0][1]


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    tmp = tmp_path_factory.mktemp("serve")
    ca = TestCA("Corp Issuing CA")
    leaf = ca.issue("srv1.corp.test", names=["srv1.corp.test", "127.0.115.20"])
    ca_file = ca.write(tmp)
    with TlsServer(leaf, mode="identify", host="127.0.115.20") as good, HangServer("127.0.115.21") as hung:
        yield {"tmp": tmp, "ca": ca_file, "good": good, "hung": hung, "leaf": leaf}


def write_config(path: Path, ca: Path, extra: str = "") -> Path:
    path.write_text(f"""\
version: 1
env: [SERVE_TEST_ISSUER]
modules:
  winrm_https:
    runbook: winrm
    with: {{ca-file: {ca}, warn-days: 30}}
    deadline: 6
    allow: [127.0.115.0/24]
  winrm_issuer:
    runbook: winrm
    with: {{ca-file: {ca}, issuer: "${{SERVE_TEST_ISSUER}}"}}
  canary:
    runbook: dns
    with: {{dns: ["127.0.115.30:5399"], timeout: 0.5}}
    allow: ["*.corp.test"]
{extra}""")
    return path


@pytest.fixture(scope="module")
def exporter(peers: dict[str, object]) -> Iterator[Served]:
    tmp = peers["tmp"]
    assert isinstance(tmp, Path)
    config = write_config(tmp / "exporter.yaml", peers["ca"])  # type: ignore[arg-type]
    with serve(config, "--max-concurrent-probes", "8", env=ENV) as served:
        yield served


def test_probe_healthy_listener(exporter: Served, peers: dict[str, object]) -> None:
    good = peers["good"]
    assert isinstance(good, TlsServer)
    status, body, headers = exporter.get(f"/probe?module=winrm_https&target={good.target}")
    assert status == 200, body
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert value(body, "probe_success") == 1
    assert 0 < value(body, "probe_duration_seconds") < 6
    statuses = {labels["check"]: v for labels, v in samples(body)["opsbook_check_status"]}
    assert statuses["winrm.cert.chain"] == 0 and statuses["winrm.wsman"] == 0, statuses
    assert all(labels["target"] == good.target for labels, _ in samples(body)["opsbook_check_status"])


def test_probe_debug_is_the_json_report(exporter: Served, peers: dict[str, object]) -> None:
    good = peers["good"]
    assert isinstance(good, TlsServer)
    status, body, headers = exporter.get(f"/probe?module=winrm_https&target={good.target}&debug=true")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    doc = json.loads(body)
    assert doc["command"] == "winrm check" and doc["status"] == "OK"
    assert doc["probe"] == {"module": "winrm_https", "target": good.target, "deadline_s": 6.0, "success": True}


def test_deadline_comes_from_the_scrape_timeout_header(exporter: Served, peers: dict[str, object]) -> None:
    hung = peers["hung"]
    assert isinstance(hung, HangServer)
    started = time.monotonic()
    status, body, _ = exporter.get(
        f"/probe?module=winrm_https&target={hung.target}", headers={"X-Prometheus-Scrape-Timeout-Seconds": "2"}
    )
    elapsed = time.monotonic() - started
    assert status == 200, body
    assert value(body, "probe_success") == 0
    assert elapsed < 2.0, elapsed  # 2 s announced, minus the margin: answered before Prometheus gives up
    assert value(body, "opsbook_status") >= 2


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("module=nope&target=127.0.115.20", "unknown module 'nope'"),
        ("target=127.0.115.20", "module parameter is missing"),
        ("module=winrm_https", "target parameter is missing"),
        ("module=winrm_https&target=%24%7BSERVE_TEST_ISSUER%7D", "target: not a host name"),
        ("module=winrm_https&target=http://127.0.115.20/", "target"),
        ("module=winrm_https&target=--hosts-file=/etc/passwd", "target: not a host name"),
        ("module=winrm_https&target=127.0.115.20:99999", "the port must be a number"),
        ("module=winrm_https&target=a%20b", "target: not a host name"),
        ("module=canary&target=x.corp.test:53", "without a port"),
        ("module=winrm_https&target=127.0.115.20&password=x", "unknown parameter 'password'"),
        ("module=winrm_https&module=canary&target=127.0.115.20", "once"),
        ("module=winrm_https&target=127.0.115.20&debug=maybe", "debug must be true or false"),
    ],
)
def test_bad_requests_are_400_with_one_line(exporter: Served, query: str, reason: str) -> None:
    status, body, _ = exporter.get(f"/probe?{query}")
    assert status == 400, body
    assert reason in body and body.count("\n") == 1, body
    assert SECRET not in body


def test_bad_scrape_timeout_header_is_400(exporter: Served) -> None:
    status, body, _ = exporter.get(
        "/probe?module=winrm_https&target=127.0.115.20", headers={"X-Prometheus-Scrape-Timeout-Seconds": "nan"}
    )
    assert status == 400 and "Scrape-Timeout" in body


@pytest.mark.parametrize("target", ["10.0.0.1", "127.0.116.1:5986", "[::1]:5986", "localhost"])
def test_allow_list_refuses_other_targets(exporter: Served, target: str) -> None:
    status, body, _ = exporter.get(f"/probe?module=winrm_https&target={target}")
    assert status == 403, body
    assert "allow list" in body


def test_allow_list_by_name(exporter: Served) -> None:
    status, body, _ = exporter.get("/probe?module=canary&target=evil.example.org")
    assert status == 403
    status, body, _ = exporter.get("/probe?module=canary&target=intranet.corp.test")
    assert status == 200, body  # allowed: the probe runs (no DNS server answers there: it fails)
    assert value(body, "probe_success") == 0


def test_secrets_from_the_environment_are_never_answered(exporter: Served, peers: dict[str, object]) -> None:
    good = peers["good"]
    assert isinstance(good, TlsServer)
    status, body, _ = exporter.get(f"/probe?module=winrm_issuer&target={good.target}")
    assert status == 200 and SECRET not in body
    statuses = {labels["check"]: v for labels, v in samples(body)["opsbook_check_status"]}
    assert statuses["winrm.cert.issuer"] == 2
    status, body, _ = exporter.get(f"/probe?module=winrm_issuer&target={good.target}&debug=true")
    assert status == 200
    assert "expected an issuer CN starting with" in body  # the check echoes the expected issuer...
    assert SECRET not in body  # ...masked
    assert SECRET[:-1] not in body
    status, body, _ = exporter.get("/metrics")
    assert SECRET not in body


def test_exporter_metrics_and_health(exporter: Served) -> None:
    exporter.get("/probe?module=nope&target=x")
    status, body, _ = exporter.get("/-/healthy")
    assert status == 200
    status, body, _ = exporter.get("/metrics")
    assert status == 200
    found = samples(body)
    outcomes = {(labels["module"], labels["outcome"]) for labels, _ in found["opsbook_exporter_probe_requests_total"]}
    assert ("", "bad_request") in outcomes
    assert found["opsbook_exporter_config_last_reload_successful"][0][1] == 1
    assert found["opsbook_exporter_probes_in_flight"][0][1] >= 0
    assert "process_open_fds" in found and "process_resident_memory_bytes" in found
    assert exporter.proc.poll() is None


def test_overload_is_503_not_a_pile_up(peers: dict[str, object]) -> None:
    tmp, hung = peers["tmp"], peers["hung"]
    assert isinstance(tmp, Path) and isinstance(hung, HangServer)
    config = write_config(tmp / "small.yaml", peers["ca"])  # type: ignore[arg-type]
    with serve(config, "--max-concurrent-probes", "2", "--max-queued", "1", env=ENV) as served:
        path = f"/probe?module=winrm_https&target={hung.target}"
        # A deadline long enough that all eight requests are in flight before the first probe
        # gives up, even on a loaded machine: then exactly 2 run, 1 waits, 5 are refused.
        headers = {"X-Prometheus-Scrape-Timeout-Seconds": "6"}
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(served.get, path, headers=headers) for _ in range(8)]
            results = [f.result() for f in futures]
        codes = sorted(code for code, _, _ in results)
        # 2 run, 1 waits, the rest are refused at once: exactly, even when all eight arrive
        # before the first takes its slot (the bound is counted before any await).
        assert codes.count(503) == 5, codes
        assert codes.count(200) == 3, codes
        assert all("overloaded" in body for code, body, _ in results if code == 503)
        _, metrics, _ = served.get("/metrics")
        outcomes = {labels["outcome"]: v for labels, v in samples(metrics)["opsbook_exporter_probe_requests_total"]}
        assert outcomes["overloaded"] >= 5
        assert served.get("/-/healthy")[0] == 200


def test_reload_keeps_the_old_modules_on_error(peers: dict[str, object]) -> None:
    tmp, good = peers["tmp"], peers["good"]
    assert isinstance(tmp, Path) and isinstance(good, TlsServer)
    config = write_config(tmp / "reload.yaml", peers["ca"])  # type: ignore[arg-type]
    with serve(config, env=ENV) as served:
        text = config.read_text()
        config.write_text(text.replace("warn-days: 30", "warn-days: thirty"))
        status, body, _ = served.get("/-/reload", method="POST")
        assert status == 500 and "reload.yaml:6" in body, body
        assert wait_for(lambda: any("reload (POST /-/reload) refused" in line for line in served.log))
        assert served.get(f"/probe?module=winrm_https&target={good.target}")[0] == 200
        _, metrics, _ = served.get("/metrics")
        assert value(metrics, "opsbook_exporter_config_last_reload_successful") == 0
        # a good file with a new module: SIGHUP reloads it
        config.write_text(text + "  extra:\n    runbook: winrm\n    with: {warn-days: 5}\n")
        served.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: served.get(f"/probe?module=extra&target={good.target}")[0] == 200)
        _, metrics, _ = served.get("/metrics")
        assert value(metrics, "opsbook_exporter_config_last_reload_successful") == 1
        assert value(metrics, "opsbook_exporter_modules") == 4
        assert served.get("/-/reload")[0] == 405  # only POST reloads


def test_web_config_tls_and_basic_auth(peers: dict[str, object]) -> None:
    tmp, good = peers["tmp"], peers["good"]
    assert isinstance(tmp, Path) and isinstance(good, TlsServer)
    ca = TestCA("Exporter CA", slot=2)
    cert, key = ca.issue("127.0.115.1", names=["127.0.115.1"]).write(tmp, "exporter")
    hashed = bcrypt.hashpw(b"s3cret-scrape", bcrypt.gensalt(rounds=4)).decode().replace("$2b$", "$2y$", 1)
    web = tmp / "web.yaml"
    web.write_text(
        f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\nbasic_auth_users:\n  prometheus: '{hashed}'\n"
    )
    config = write_config(tmp / "tls.yaml", peers["ca"])  # type: ignore[arg-type]
    client = ssl.create_default_context(cafile=str(ca.write(tmp, "exporter-ca.pem")))
    with serve(config, "--web-config", str(web), env=ENV) as served:
        assert served.url.startswith("https://")
        assert served.get("/-/healthy", context=client)[0] == 401
        wrong = base64.b64encode(b"prometheus:nope").decode()
        assert served.get("/-/healthy", context=client, headers={"Authorization": f"Basic {wrong}"})[0] == 401
        right = {"Authorization": "Basic " + base64.b64encode(b"prometheus:s3cret-scrape").decode()}
        for _ in range(2):  # the second is answered from the cache
            status, body, _ = served.get(
                f"/probe?module=winrm_https&target={good.target}", context=client, headers=right
            )
            assert status == 200 and value(body, "probe_success") == 1


def test_validate_and_bad_config_are_one_line_exit_3(tmp_path: Path, peers: dict[str, object]) -> None:
    config = write_config(tmp_path / "ok.yaml", peers["ca"])  # type: ignore[arg-type]
    result = run_cli("serve", "--config", str(config), "--validate", env=ENV)
    assert result.code == 0 and "OK, 3 modules" in result.out, result.err
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nmodules:\n  w:\n    runbook: winrm\n    with: {hosts: [a.corp.test]}\n")
    result = run_cli("serve", "--config", str(bad), "--validate", env=ENV)
    assert result.code == 3 and "bad.yaml:5:12: modules.w: hosts comes from the request's target" in result.err
    assert "Traceback" not in result.err
    bad.write_text("version: 1\nmodules:\n  w:\n    runbook: winrm\n    allow: [not a network]\n")
    result = run_cli("serve", "--config", str(bad), "--validate", env=ENV)
    assert result.code == 3 and "bad.yaml:5:13" in result.err and "neither a network" in result.err
    result = run_cli("serve", "--config", str(config), "--listen", "nowhere", env=ENV)
    assert result.code == 3 and "--listen nowhere" in result.err
    web = tmp_path / "web.yaml"
    web.write_text("basic_auth_users:\n  prometheus: plaintext\n")
    result = run_cli("serve", "--config", str(config), "--web-config", str(web), "--validate", env=ENV)
    assert result.code == 3 and "web.yaml:2:15" in result.err and "bcrypt" in result.err
    assert os.path.exists(config)


def test_waiting_for_a_slot_counts_against_the_deadline(peers: dict[str, object]) -> None:
    """A request that waited for a probe slot is still answered by its deadline, not a deadline later."""
    tmp, hung = peers["tmp"], peers["hung"]
    assert isinstance(tmp, Path) and isinstance(hung, HangServer)
    config = write_config(tmp / "one-slot.yaml", peers["ca"])  # type: ignore[arg-type]
    with serve(config, "--max-concurrent-probes", "1", env=ENV) as served:
        path = f"/probe?module=winrm_https&target={hung.target}"
        # 3 s announced: a 2.5 s deadline; the first probe holds the only slot for its own 2 s
        # timeout, so the second request gets the slot with 0.5 s of its deadline left.
        headers = {"X-Prometheus-Scrape-Timeout-Seconds": "3"}

        def timed() -> tuple[int, str, float]:
            started = time.monotonic()
            status, body, _ = served.get(path, headers=headers)
            return status, body, time.monotonic() - started

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            results = [f.result() for f in [pool.submit(timed) for _ in range(2)]]
    for status, body, elapsed in results:
        assert status in (200, 503), body
        assert elapsed < 3.0, (elapsed, body)  # within the scrape timeout Prometheus announced
        if status == 200:
            assert value(body, "probe_success") == 0


def children(pid: int) -> list[int]:
    """The child processes of *pid* (the exporter's probe workers)."""
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as fh:
            found += [int(child) for child in fh.read().split()]
    return found


def threads(pids: list[int]) -> int:
    return sum(len(os.listdir(f"/proc/{pid}/task")) for pid in pids)


@pytest.mark.parametrize("processes", [0, 2])
def test_probe_threads_are_started_before_the_first_request(peers: dict[str, object], processes: int) -> None:
    """Starting a thread makes its caller wait for it: under load that made deadlines fire late."""
    tmp, good = peers["tmp"], peers["good"]
    assert isinstance(tmp, Path) and isinstance(good, TlsServer)
    config = write_config(tmp / f"threads-{processes}.yaml", peers["ca"])  # type: ignore[arg-type]
    args = ("--max-concurrent-probes", "8", "--probe-processes", str(processes))
    with serve(config, *args, env=ENV) as served:
        workers = children(served.proc.pid)
        assert len(workers) == processes, workers  # 0: the probes run in the server's own threads
        pids = [served.proc.pid, *workers]
        before = threads(pids)
        assert before >= 8 + 1, before  # --max-concurrent-probes 8 (shared by the workers), the event loop
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: served.get(f"/probe?module=winrm_https&target={good.target}"), range(8)))
        assert all(status == 200 and value(body, "probe_success") == 1 for status, body, _ in results)
        assert threads(pids) <= before + 1  # none started under load


def replacements(served: Served, reason: str) -> float:
    _, metrics, _ = served.get("/metrics")
    found = samples(metrics)["opsbook_exporter_probe_worker_replacements_total"]
    return next(v for labels, v in found if labels["reason"] == reason)


def test_a_worker_that_dies_is_replaced_and_its_probe_answered(peers: dict[str, object]) -> None:
    tmp, good, hung = peers["tmp"], peers["good"], peers["hung"]
    assert isinstance(tmp, Path) and isinstance(good, TlsServer) and isinstance(hung, HangServer)
    config = write_config(tmp / "dies.yaml", peers["ca"])  # type: ignore[arg-type]
    with serve(config, "--probe-processes", "1", "--max-concurrent-probes", "4", env=ENV) as served:
        [worker] = children(served.proc.pid)
        headers = {"X-Prometheus-Scrape-Timeout-Seconds": "5"}
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            started = time.monotonic()
            pending = pool.submit(
                served.get, f"/probe?module=winrm_https&target={hung.target}&debug=true", headers=headers
            )
            assert wait_for(lambda: value(served.get("/metrics")[1], "opsbook_exporter_probes_in_flight") == 1)
            os.kill(worker, signal.SIGKILL)
            status, body, _ = pending.result()
        assert status == 200 and time.monotonic() - started < 3  # answered when the worker died, not at 4.5 s
        [check] = json.loads(body)["checks"]
        assert check["status"] == "UNKNOWN" and "probe worker process ended" in check["summary"], check
        assert wait_for(lambda: len(children(served.proc.pid)) == 1 and children(served.proc.pid) != [worker])
        assert wait_for(lambda: served.get(f"/probe?module=winrm_https&target={good.target}")[0] == 200)
        status, body, _ = served.get(f"/probe?module=winrm_https&target={good.target}")
        assert value(body, "probe_success") == 1
        assert replacements(served, "died") == 1 and replacements(served, "recycled") == 0
        assert any(f"probe worker process {worker} ended" in line for line in served.log)
        assert value(served.get("/metrics")[1], "opsbook_exporter_probes_in_flight") == 0  # its slot came back


def test_workers_are_recycled_without_losing_a_probe(peers: dict[str, object]) -> None:
    tmp, good = peers["tmp"], peers["good"]
    assert isinstance(tmp, Path) and isinstance(good, TlsServer)
    config = write_config(tmp / "recycle.yaml", peers["ca"])  # type: ignore[arg-type]
    args = ("--probe-processes", "2", "--max-concurrent-probes", "4", "--recycle-after", "3")
    with serve(config, *args, env=ENV) as served:
        first = set(children(served.proc.pid))
        assert len(first) == 2
        path = f"/probe?module=winrm_https&target={good.target}"
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: served.get(path), range(24)))
        assert [status for status, _, _ in results] == [200] * 24
        assert all(value(body, "probe_success") == 1 for _, body, _ in results)  # none lost to a replacement
        assert wait_for(lambda: len(children(served.proc.pid)) == 2 and not first & set(children(served.proc.pid)))
        assert replacements(served, "recycled") >= 2 and replacements(served, "died") == 0


def test_connections_without_a_complete_request_are_closed(peers: dict[str, object]) -> None:
    """A client that connects and sends nothing, or trickles its request head, cannot hold a
    connection (and a file descriptor) for ever: at most --idle-timeout."""
    tmp, hung = peers["tmp"], peers["hung"]
    assert isinstance(tmp, Path) and isinstance(hung, HangServer)
    config = write_config(tmp / "idle.yaml", peers["ca"])  # type: ignore[arg-type]
    with serve(config, "--idle-timeout", "1", "--probe-processes", "0", env=ENV) as served:
        host, port = served.url.removeprefix("http://").rsplit(":", 1)
        idle = socket.create_connection((host, int(port)))
        trickle = socket.create_connection((host, int(port)))
        trickle.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: exporter\r\n")
        started = time.monotonic()
        for _ in range(3):
            time.sleep(0.3)
            with contextlib.suppress(OSError):  # (closed already, on a slow machine)
                trickle.sendall(b"X-Slow: 1\r\n")  # still no end of the head
        for conn in (idle, trickle):
            conn.settimeout(5)
            try:
                answer = conn.recv(100)
            except ConnectionResetError:
                answer = b""
            assert answer == b"", "the exporter kept the connection open"
            conn.close()
        assert time.monotonic() - started < 4
        assert served.get("/-/healthy")[0] == 200  # everyone else is served as before
        # a request that takes longer than the idle timeout is not cut: only waiting for one is
        started = time.monotonic()
        status, body, _ = served.get(
            f"/probe?module=winrm_https&target={hung.target}", headers={"X-Prometheus-Scrape-Timeout-Seconds": "3"}
        )
        assert status == 200 and value(body, "probe_success") == 0 and time.monotonic() - started > 1.5


def test_a_name_allowed_by_network_is_probed_at_the_address_checked(peers: dict[str, object]) -> None:
    """A name allowed by network is resolved by the allow list, and the probe (in a worker
    process) connects to the first address checked, handed over as ``--resolve``."""
    tmp, good = peers["tmp"], peers["good"]
    assert isinstance(tmp, Path) and isinstance(good, TlsServer)
    first = socket.getaddrinfo("localhost", None, type=socket.SOCK_STREAM)[0][4][0]  # /etc/hosts
    config = write_config(
        tmp / "pin.yaml",
        peers["ca"],  # type: ignore[arg-type]
        "  by_network:\n    runbook: winrm\n    allow: [127.0.0.0/8, '::1/128']\n",
    )
    with serve(config, env=ENV) as served:
        status, body, _ = served.get(f"/probe?module=by_network&target=localhost:{good.port}&debug=true")
    assert status == 200, body
    tcp = next(c for c in json.loads(body)["checks"] if c["id"] == "winrm.tcp")
    assert tcp["details"]["address"] == first, tcp


def test_the_pinned_address_is_the_one_connected_to(peers: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    """The binding puts the checked address in --resolve: a name that resolves nowhere (.test)
    is probed at the pinned address, with its name still judged against the certificate."""
    from opsbook.cli.commands.serve import ExporterHooks
    from opsbook.runbooks.exporter import load_module_config

    tmp, good = peers["tmp"], peers["good"]
    assert isinstance(tmp, Path) and isinstance(good, TlsServer)
    monkeypatch.setenv("SERVE_TEST_ISSUER", SECRET)
    config = load_module_config(write_config(tmp / "pinned.yaml", peers["ca"]))  # type: ignore[arg-type]
    hooks = ExporterHooks()
    hooks.validate(config)
    call, _ = hooks.prepare(config, config.modules["winrm_https"], f"srv1.corp.test:{good.port}", 3.0, good.host)
    checks = {check.id: check for check in call(3.0).checks}
    assert checks["winrm.tcp"].details["address"] == good.host
    assert checks["winrm.tls"].status.name == "OK" and checks["winrm.cert.name"].status.name == "OK"
