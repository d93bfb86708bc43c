"""The shared TLS probe against real loopback peers: verification, fallback, deadlines."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from opsbook.runbooks.errors import InputError
from opsbook.runbooks.probes.tcp import PortState
from opsbook.runbooks.probes.tls import client_context, legacy_protocols, resolve, tls_probe
from tests.tlspeers import HangServer, TestCA, TlsServer, days_from_now, free_port, make_leaf, server_context

HOST = "tls.corp.test"


@pytest.fixture(scope="module")
def probe_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[TestCA, str]:
    ca = TestCA("Probe Test CA")
    return ca, str(ca.write(tmp_path_factory.mktemp("tls-probe")))


def test_verified_handshake_reports_version_cipher_and_certificate(probe_ca: tuple[TestCA, str]) -> None:
    ca, ca_file = probe_ca
    leaf = make_leaf("valid", ca, HOST)
    with TlsServer(leaf) as srv:
        probe = tls_probe(HOST, srv.port, address=srv.host, ca_file=ca_file, timeout=2, then=lambda s: s.version())
        assert srv.sni_seen == [HOST]  # one handshake (a ClientHello) when the chain verifies
    assert probe.tcp_state is PortState.OPEN
    assert probe.handshake and probe.verified is True
    assert probe.version == probe.after == "TLSv1.3"
    assert probe.cipher
    assert probe.cert_der == leaf.cert_der


def test_failed_verification_still_fetches_the_certificate(probe_ca: tuple[TestCA, str]) -> None:
    ca, ca_file = probe_ca
    leaf = make_leaf("expired", ca, HOST)
    with TlsServer(leaf) as srv:
        probe = tls_probe(HOST, srv.port, address=srv.host, ca_file=ca_file, timeout=2)
        assert srv.sni_seen == [HOST, HOST]  # verifying, then non-verifying handshake
    assert probe.verified is False
    assert probe.verify_code == 10 and probe.verify_reason == "expired"
    assert probe.handshake and probe.cert_der == leaf.cert_der
    # The second handshake verified the chain with the dates ignored: expiry is the only fault.
    assert probe.verified_except_dates is True
    assert probe.chain_der[0] == leaf.cert_der and probe.chain_der[-1] == ca.cert.public_bytes(Encoding.DER)


def test_untrusted_expired_leaf_is_not_verified_apart_from_dates(probe_ca: tuple[TestCA, str]) -> None:
    _, ca_file = probe_ca
    other = TestCA("Probe Other CA", slot=3)
    leaf = other.issue(HOST, not_before=days_from_now(-400), not_after=days_from_now(-5))
    with TlsServer(leaf) as srv:
        probe = tls_probe(HOST, srv.port, address=srv.host, ca_file=ca_file, timeout=2)
        assert len(srv.sni_seen) == 2  # verifying, non-verifying: no retry without dates
    # OpenSSL fails on the untrusted issuer before it looks at dates: no "dates aside" claim.
    assert probe.verified is False and probe.verified_except_dates is None and not probe.chain_der
    assert probe.verify_code in (19, 20)
    assert probe.handshake and probe.cert_der == leaf.cert_der


V = ssl.TLSVersion


@pytest.mark.parametrize(
    ("minimum", "maximum", "accepted", "hellos"),
    [
        (V.TLSv1_2, V.MAXIMUM_SUPPORTED, [], 1),  # the common case: both refused by one alert
        (V.TLSv1, V.MAXIMUM_SUPPORTED, ["TLSv1", "TLSv1.1"], 2),  # 1.1 answered: 1.0 offered alone
        (V.TLSv1, V.TLSv1, ["TLSv1"], 1),  # answered in 1.0: 1.1 is off, nothing more to ask
        (V.TLSv1_1, V.TLSv1_2, ["TLSv1.1"], 2),  # 1.1 answered, 1.0 alone refused
    ],
)
def test_legacy_protocols_are_each_found_with_the_fewest_hellos(
    probe_ca: tuple[TestCA, str], minimum: ssl.TLSVersion, maximum: ssl.TLSVersion, accepted: list[str], hellos: int
) -> None:
    ca, _ = probe_ca
    ctx = server_context(make_leaf("valid", ca, HOST), min_version=minimum, max_version=maximum)
    with TlsServer(context=ctx) as srv:
        assert legacy_protocols(HOST, srv.port, address=srv.host, timeout=2) == accepted
        assert srv.accepted == hellos


def test_legacy_protocols_skip_the_negotiated_one(probe_ca: tuple[TestCA, str]) -> None:
    ca, _ = probe_ca
    ctx = server_context(make_leaf("valid", ca, HOST), min_version=V.TLSv1, max_version=V.TLSv1_1)
    with TlsServer(context=ctx) as srv:
        assert legacy_protocols(HOST, srv.port, address=srv.host, timeout=2, skip=("TLSv1.1",)) == ["TLSv1"]
        assert srv.accepted == 1


def test_legacy_protocols_of_a_host_that_went_away_are_none() -> None:
    port = free_port()
    started = time.perf_counter()
    assert legacy_protocols(HOST, port, address="127.0.0.1", timeout=2) == []
    assert time.perf_counter() - started < 1  # refused at once, not waited for


def test_non_verifying_probe(probe_ca: tuple[TestCA, str]) -> None:
    ca, _ = probe_ca
    with TlsServer(make_leaf("self_signed", ca, HOST)) as srv:
        probe = tls_probe(HOST, srv.port, address=srv.host, verify=False, timeout=2)
    assert probe.verified is None and probe.handshake


def test_hung_server_costs_one_timeout() -> None:
    with HangServer() as srv:
        start = time.monotonic()
        probe = tls_probe(HOST, srv.port, address=srv.host, timeout=0.4)
        elapsed = time.monotonic() - start
    assert 0.35 < elapsed < 1.0
    assert probe.tcp_state is PortState.OPEN
    assert probe.handshake_timed_out and not probe.handshake


def test_trickling_server_cannot_stretch_the_deadline() -> None:
    """A server that sends a byte every 0.1 s would defeat a per-recv timeout; not our deadline."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            record = b"\x16\x03\x03\x40\x00" + b"\x02" * 100  # a handshake record that never ends
            for byte in record:
                if stop.wait(0.1):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        start = time.monotonic()
        probe = tls_probe(HOST, port, address="127.0.0.1", timeout=0.5)
        elapsed = time.monotonic() - start
    finally:
        stop.set()
        thread.join(5)
        listener.close()
    assert elapsed < 1.0
    assert probe.handshake_timed_out


def test_closed_port() -> None:
    probe = tls_probe(HOST, free_port(), address="127.0.0.1", timeout=1)
    assert probe.tcp_state is PortState.CLOSED
    assert not probe.handshake


def test_unresolvable_name_is_an_error_not_a_crash() -> None:
    probe = tls_probe("no-such-host.invalid", 5986, timeout=1)
    assert probe.tcp_state is PortState.ERROR
    assert "cannot resolve" in probe.tcp_error


@pytest.mark.parametrize("name", ["a..corp.test", "x" * 64 + ".corp.test"])
def test_name_the_idna_codec_refuses_is_a_quick_error_without_a_thread_traceback(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    crashes: list[object] = []
    monkeypatch.setattr(threading, "excepthook", crashes.append)
    start = time.monotonic()
    with pytest.raises(socket.gaierror, match="invalid host name"):
        resolve(name, 3)
    probe = tls_probe(name, 5986, timeout=3)
    assert time.monotonic() - start < 1  # no waiting for a timeout on a lookup that never ran
    assert probe.tcp_state is PortState.ERROR and "cannot resolve" in probe.tcp_error
    assert crashes == []


def test_system_store_is_loaded_once_by_a_fleet_of_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --ca-file every probe thread wants the system store at once: one load, not one per host."""
    import ssl

    from opsbook.runbooks.probes import tls

    loads: list[int] = []
    real = ssl.SSLContext.load_default_certs

    def slow_load(self: ssl.SSLContext, purpose: ssl.Purpose = ssl.Purpose.SERVER_AUTH) -> None:
        loads.append(1)
        time.sleep(0.05)
        real(self, purpose)

    monkeypatch.setattr(ssl.SSLContext, "load_default_certs", slow_load)
    tls._client_context.cache_clear()
    try:
        barrier = threading.Barrier(40)

        def ask() -> ssl.SSLContext:
            barrier.wait()
            return client_context(None, verify=True)

        with ThreadPoolExecutor(40) as pool:
            contexts = list(pool.map(lambda _: ask(), range(40)))
    finally:
        tls._client_context.cache_clear()
    assert len(loads) == 1
    assert len({id(c) for c in contexts}) == 1


def test_ipv6_loopback(probe_ca: tuple[TestCA, str]) -> None:
    ca, ca_file = probe_ca
    try:
        srv = TlsServer(ca.issue("::1", names=["::1"]), host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with srv:
        probe = tls_probe("::1", srv.port, ca_file=ca_file, timeout=2)
    assert probe.verified is True
    assert probe.server_name is None  # no SNI for an address


def test_unreadable_ca_file_is_input_error(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("garbage")
    with pytest.raises(InputError):
        client_context(str(bad))


def test_descriptors_above_1023_work(probe_ca: tuple[TestCA, str]) -> None:
    """Big fleets open many sockets at once: select() would fail above FD_SETSIZE, poll() does not."""
    import os
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip("cannot open 1100 descriptors here")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    ca, ca_file = probe_ca
    filler: list[int] = []
    try:
        with TlsServer(make_leaf("valid", ca, HOST)) as srv:
            while not filler or filler[-1] < 1030:
                filler.append(os.open(os.devnull, os.O_RDONLY))
            probe = tls_probe(HOST, srv.port, address=srv.host, ca_file=ca_file, timeout=2)
    finally:
        for fd in filler:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert probe.handshake and probe.verified is True
