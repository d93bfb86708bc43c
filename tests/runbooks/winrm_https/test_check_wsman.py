"""Classification of the answer to the unauthenticated WS-Man Identify."""

from __future__ import annotations

import socket
import time

from opsbook.runbooks.winrm_https import wsman
from opsbook.runbooks.winrm_https.wsman import identify_request, parse_response

WINRM_401 = (
    b"HTTP/1.1 401 \r\nServer: Microsoft-HTTPAPI/2.0\r\nWWW-Authenticate: Negotiate\r\n"
    b"WWW-Authenticate: Kerberos\r\nContent-Length: 0\r\n\r\n"
)


def test_401_with_negotiate_and_kerberos_is_winrm() -> None:
    answer = parse_response(WINRM_401)
    assert answer.status == 401
    assert answer.auth_schemes == ["Negotiate", "Kerberos"]
    assert answer.is_winrm and not answer.basic_offered
    assert answer.server == "Microsoft-HTTPAPI/2.0"


def test_comma_joined_schemes_and_basic_are_seen() -> None:
    answer = parse_response(
        b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Negotiate, Basic realm="WSMAN", CredSSP\r\n\r\n'
    )
    assert answer.auth_schemes == ["Negotiate", "Basic", "CredSSP"]
    assert answer.is_winrm and answer.basic_offered


def test_basic_only_counts_as_winrm_only_from_http_sys() -> None:
    assert parse_response(b"HTTP/1.1 401 \r\nServer: Microsoft-HTTPAPI/2.0\r\nWWW-Authenticate: Basic\r\n\r\n").is_winrm
    assert not parse_response(b"HTTP/1.1 401 \r\nServer: nginx\r\nWWW-Authenticate: Basic\r\n\r\n").is_winrm


def test_identify_response_is_winrm_with_product() -> None:
    body = (
        b"<s:Envelope><s:Body><wsmid:IdentifyResponse><wsmid:ProductVendor>Microsoft Corporation"
        b"</wsmid:ProductVendor><wsmid:ProductVersion>OS: 10.0.20348 SP: 0.0 Stack: 3.0</wsmid:ProductVersion>"
        b"</wsmid:IdentifyResponse></s:Body></s:Envelope>"
    )
    answer = parse_response(b"HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\n\r\n" + body)
    assert answer.identify and answer.is_winrm
    assert answer.product_vendor == "Microsoft Corporation"
    assert answer.product_version.startswith("OS: 10.0.20348")


def test_other_answers_are_not_winrm() -> None:
    assert not parse_response(b"HTTP/1.1 200 OK\r\nServer: nginx\r\n\r\n<html></html>").is_winrm
    assert not parse_response(b"HTTP/1.1 404 Not Found\r\n\r\n").is_winrm
    garbage = parse_response(b"SSH-2.0-OpenSSH_9.6\r\n")
    assert garbage.status is None and "not HTTP" in garbage.error
    assert "no answer" in parse_response(b"").error


def test_identify_request_is_a_well_formed_post() -> None:
    raw = identify_request("srv1.corp.test:5986")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /wsman HTTP/1.1\r\nHost: srv1.corp.test:5986\r\n")
    assert f"Content-Length: {len(body)}".encode() in head
    assert b"<wsmid:Identify/>" in body
    assert b"Authorization" not in head


def test_peer_text_is_cleaned() -> None:
    answer = parse_response(
        b"HTTP/1.1 401 \x1b[2J\r\nServer: evil\x1b]0;pwned\x07"
        + b"x" * 500
        + b"\r\nWWW-Authenticate: Negotiate\r\n\r\n"
    )
    assert "\x1b" not in answer.server and "\x07" not in answer.server
    assert len(answer.server) <= 120 and answer.server.endswith("...")
    assert "\x1b" not in answer.reason


def test_chunked_answer_on_a_kept_alive_connection_does_not_wait_for_the_timeout() -> None:
    """A server that ignores 'Connection: close' and sends a chunked body: stop at the last chunk."""
    ours, theirs = socket.socketpair()
    try:
        theirs.sendall(
            b"HTTP/1.1 200 OK\r\nServer: Kestrel\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        )
        start = time.monotonic()
        answer = wsman.identify(ours, "srv1.corp.test:5986", timeout=3)
        assert time.monotonic() - start < 1
    finally:
        ours.close()
        theirs.close()
    assert answer.status == 200 and not answer.is_winrm and answer.server == "Kestrel"
