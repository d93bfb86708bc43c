"""``--web-config``: the exporter-toolkit file Prometheus exporters share (TLS, basic auth).

Supported: ``tls_server_config`` (cert_file, key_file, client_ca_file, client_auth_type
NoClientCert / VerifyClientCertIfGiven / RequireAndVerifyClientCert, min_version,
max_version), ``basic_auth_users`` (user: bcrypt hash) and ``http_server_config.headers``.
Anything else is refused with its line, rather than silently ignored.
"""

from __future__ import annotations

import hashlib
import os
import re
import ssl
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from ..suite.loader import _expect, _unknown_key
from ..suite.yamlsafe import SuiteError, YNode, load_file

TOP_KEYS = ("tls_server_config", "basic_auth_users", "http_server_config")
TLS_KEYS = ("cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version", "max_version")
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_BCRYPT_RE = re.compile(r"^\$2[abxy]?\$\d\d\$[./A-Za-z0-9]{53}$")
#: Credentials that checked out, remembered (by digest) so bcrypt runs once per client, not per scrape.
AUTH_CACHE_SIZE = 256
#: Compared against when the user is unknown, so a wrong user costs as much as a wrong password.
_DUMMY_HASH = b"$2b$10$CwTycUXWue0Thq9StjUM0uJ8.Zr6xE0/3MsQzT/jMfyMPv4JZPk2m"


@dataclass
class WebConfig:
    """The parsed web config: a server TLS context (or None) and the basic-auth users."""

    path: str
    tls: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    _ok: OrderedDict[bytes, None] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def check_password(self, user: str, password: str) -> bool:
        """Whether *user*/*password* match a bcrypt hash of the file (slow: run it off the event loop)."""
        import bcrypt

        stored = self.users.get(user)
        digest = hashlib.sha256(b"%s\0%s\0%s" % (user.encode(), password.encode(), stored or b"")).digest()
        with self._lock:
            if stored is not None and digest in self._ok:
                self._ok.move_to_end(digest)
                return True
        try:
            ok = bcrypt.checkpw(password.encode(), stored or _DUMMY_HASH) and stored is not None
        except ValueError:
            ok = False
        if ok:
            with self._lock:
                self._ok[digest] = None
                while len(self._ok) > AUTH_CACHE_SIZE:
                    self._ok.popitem(last=False)
        return ok


def _file(node: YNode, base: str, what: str) -> str:
    if not isinstance(node.value, str) or not node.value:
        raise SuiteError(node.mark, f"{what} must be a file name")
    path = os.path.expanduser(node.value)
    if not os.path.isabs(path):
        path = os.path.join(os.path.dirname(os.path.abspath(base)), path)
    if not os.path.isfile(path):
        raise SuiteError(node.mark, f"{what} {node.value}: no such file")
    return path


def _tls(node: YNode, display: str) -> ssl.SSLContext:
    _expect(node, ("mapping",), "tls_server_config")
    _unknown_key(node.keys, TLS_KEYS, "tls_server_config")
    fields = node.value
    for required in ("cert_file", "key_file"):
        if required not in fields:
            raise SuiteError(node.mark, f"tls_server_config needs {required}")
    cert = _file(fields["cert_file"], display, "cert_file")
    key = _file(fields["key_file"], display, "key_file")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    for name in ("min_version", "max_version"):
        if name in fields:
            value = fields[name].value
            if value not in VERSIONS:
                raise SuiteError(fields[name].mark, f"{name} must be one of {', '.join(VERSIONS)}")
            setattr(ctx, "minimum_version" if name == "min_version" else "maximum_version", VERSIONS[value])
    try:
        ctx.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise SuiteError(fields["cert_file"].mark, f"cert_file/key_file: cannot load them: {exc}") from None
    auth = fields.get("client_auth_type")
    mode = "NoClientCert" if auth is None else auth.value
    if mode not in CLIENT_AUTH:
        raise SuiteError(auth.mark if auth else node.mark, f"client_auth_type must be one of {', '.join(CLIENT_AUTH)}")
    ctx.verify_mode = CLIENT_AUTH[mode]
    if mode != "NoClientCert":
        if "client_ca_file" not in fields:
            raise SuiteError(node.mark, f"client_auth_type {mode} needs client_ca_file")
        try:
            ctx.load_verify_locations(_file(fields["client_ca_file"], display, "client_ca_file"))
        except (ssl.SSLError, OSError) as exc:
            raise SuiteError(fields["client_ca_file"].mark, f"client_ca_file: cannot load it: {exc}") from None
    return ctx


def load_web_config(path: str | os.PathLike[str]) -> WebConfig:
    """Load the exporter-toolkit web config at *path* (``file:line:col`` errors)."""
    display = os.fspath(path)
    if not Path(path).is_file():
        raise SuiteError(None, f"{display}: web config does not exist or is not a file")
    root = load_file(Path(path), display)
    config = WebConfig(path=display)
    if root is None:
        return config
    _expect(root, ("mapping",), "the web config")
    _unknown_key(root.keys, TOP_KEYS, "the web config")
    doc = root.value
    if "tls_server_config" in doc and doc["tls_server_config"].value is not None:
        config.tls = _tls(doc["tls_server_config"], display)
    if "basic_auth_users" in doc and doc["basic_auth_users"].value is not None:
        users = doc["basic_auth_users"]
        _expect(users, ("mapping",), "basic_auth_users")
        for user, hashed in users.value.items():
            if not isinstance(hashed.value, str) or not _BCRYPT_RE.match(hashed.value):
                raise SuiteError(
                    hashed.mark,
                    f"basic_auth_users.{user}: not a bcrypt hash ($2y$10$...; make one with htpasswd -nBC 10 '' "
                    "or python -c 'import bcrypt; print(bcrypt.hashpw(b\"...\", bcrypt.gensalt()).decode())')",
                )
            if ":" in user:
                raise SuiteError(users.keys[user], "basic_auth_users: a user name cannot contain ':'")
            config.users[user] = hashed.value.encode()
    if "http_server_config" in doc and doc["http_server_config"].value is not None:
        http = doc["http_server_config"]
        _expect(http, ("mapping",), "http_server_config")
        _unknown_key(http.keys, ("headers",), "http_server_config")
        if "headers" in http.value:
            headers = http.value["headers"]
            _expect(headers, ("mapping",), "http_server_config.headers")
            for name, value in headers.value.items():
                if not isinstance(value.value, str) or "\n" in value.value or "\r" in value.value:
                    raise SuiteError(value.mark, f"http_server_config.headers.{name} must be one line of text")
                config.headers[name] = value.value
    return config
