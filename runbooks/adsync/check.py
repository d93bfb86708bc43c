"""``adsync check``: DNS per server, DC discovery, the port matrix (and Graph), all at once.

Everything runs concurrently in one thread pool, and work is started as soon as what it
needs is known: the port probes of a DC start when the first server returns its address,
not when the slowest (or a dead) DNS server has timed out. The wall time is therefore
about one timeout for the DNS questions plus, overlapping, one for the port probes.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from ..errors import OpsbookError
from ..model import CheckResult, Report, Status
from ..probes.dns import DnsAnswer, DnsOutcome, dns_query, server_label
from ..probes.targets import HostPort, is_ip
from .dcinfo import SkewThresholds, assess_clock, assess_ldap, assess_ldaps
from .dns_health import Question, assess_dns, assess_dns_source, base_questions, dc_locator_question
from .ports import DEFAULT_PORTS, PortProbe, PortSpec, assess_dc, probe_port, unresolved_dc

#: Most DCs taken from SRV answers: the DNS server chooses these addresses, so their number is bounded.
MAX_DCS = 50
#: Most addresses (A and AAAA) probed per DC.
MAX_ADDRESSES = 8


@dataclass
class AdsyncOptions:
    """What ``adsync check`` asks, parsed and validated."""

    domain: str
    dns_servers: list[HostPort]  # host is an IP address
    dcs: list[str] = field(default_factory=list)  # empty: discover through SRV
    ports: list[PortSpec] = field(default_factory=lambda: list(DEFAULT_PORTS))
    timeout: float = 2.0
    resolve: dict[str, str] = field(default_factory=dict)
    #: Threads; 1 runs every probe one after another (the benchmark's baseline).
    concurrency: int = 256
    #: True when ``dns_servers`` came from this host's resolv.conf (no ``--dns``).
    dns_from_resolv_conf: bool = False
    #: AD site: discover DCs through ``_ldap._tcp.SITE._sites.dc._msdcs.DOMAIN``.
    site: str | None = None
    #: At most this many DCs from SRV answers (the rest are reported, not probed).
    max_dcs: int = MAX_DCS
    skew: SkewThresholds = field(default_factory=SkewThresholds)
    #: CA bundle for the LDAPS ports (default: the system store).
    ca_file: str | None = None
    #: Judge the LDAPS certificates (chain, name, expiry, EKU): when 636/3269 are asked for or --ca-file given.
    ldaps_certs: bool = False


@dataclass
class _Dc:
    name: str
    addresses: list[str] = field(default_factory=list)
    probes: dict[tuple[str, PortSpec], PortProbe] = field(default_factory=dict)

    @property
    def address(self) -> str | None:
        return self.addresses[0] if self.addresses else None


class _Run:
    """The event loop: submit, wait for whatever finishes, submit what it unlocks."""

    def __init__(self, options: AdsyncOptions, pool: ThreadPoolExecutor) -> None:
        self.o = options
        self.pool = pool
        self.pending: dict[Future[Any], tuple[str, Any]] = {}
        self.servers = [server_label(s.host, s.port) for s in options.dns_servers]
        self.answers: dict[tuple[str, Question], DnsAnswer] = {}
        self.tcp: dict[str, DnsAnswer] = {}
        self.dcs: dict[str, _Dc] = {}
        self.extra: list[CheckResult] = []
        self.extra_error: BaseException | None = None
        self.locator = dc_locator_question(options.domain, options.site)
        #: The DCs each server's own SRV answer lists (a server is judged by what it advertises).
        self.advertised: dict[str, set[str]] = {}
        #: DCs in SRV answers beyond --max-dcs (not probed).
        self.cut: list[str] = []
        #: AAAA answers (not judged as DNS health: an IPv4-only DC has none).
        self.aaaa: dict[tuple[str, str], DnsAnswer] = {}

    def submit(self, kind: str, key: Any, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.pending[self.pool.submit(func, *args, **kwargs)] = (kind, key)

    def ask(self, server: HostPort, question: Question, tcp: bool = False) -> None:
        label = server_label(server.host, server.port)
        self.submit("tcp" if tcp else "q", (label, question), dns_query, server.host, question[0], question[1],
                    port=server.port, timeout=self.o.timeout, tcp=tcp)

    def add_dc(self, name: str, hints: tuple[str, ...] = (), from_srv: bool = False) -> None:
        key = name.rstrip(".").lower()
        if key in self.dcs:
            dc = self.dcs[key]
        elif from_srv and len(self.dcs) >= self.o.max_dcs:
            if key not in self.cut:
                self.cut.append(key)
            return
        else:
            dc = self.dcs[key] = _Dc(key)
            if is_ip(key):
                self.add_address(dc, key)
            else:
                for server in self.o.dns_servers:
                    self.ask(server, (key, "A"))
                    label = server_label(server.host, server.port)
                    self.submit("aaaa", (label, key), dns_query, server.host, key, "AAAA", port=server.port,
                                timeout=self.o.timeout)
                if key in self.o.resolve:
                    self.add_address(dc, self.o.resolve[key])
        if key not in self.o.resolve:
            for hint in hints:
                if is_ip(hint):
                    self.add_address(dc, hint)

    def add_address(self, dc: _Dc, address: str) -> None:
        """Probe every port of one more address of *dc* (each A and AAAA, at most MAX_ADDRESSES)."""
        if address in dc.addresses or len(dc.addresses) >= MAX_ADDRESSES:
            return
        if dc.name in self.o.resolve and dc.addresses:
            return  # --resolve pins the address
        dc.addresses.append(address)
        for spec in self.o.ports:
            self.submit("port", (dc.name, address, spec), probe_port, address, spec, self.o.domain, self.o.timeout,
                        dc=dc.name if not is_ip(dc.name) else address, ca_file=self.o.ca_file)

    def handle(self, kind: str, key: Any, value: Any) -> None:
        if kind == "q":
            answer: DnsAnswer = value
            self.answers[key] = answer
            question = key[1]
            if question == self.locator and answer.outcome is DnsOutcome.DATA:
                targets = [t for t, _port in answer.srv_targets()]
                self.advertised[key[0]] = set(targets)
                if not self.o.dcs:
                    for target in targets:
                        self.add_dc(target, answer.additional.get(target, ()), from_srv=True)
            elif question[1] == "A" and question[0] in self.dcs and answer.outcome is DnsOutcome.DATA:
                for record in answer.records:
                    self.add_address(self.dcs[question[0]], record)
        elif kind == "aaaa":
            answer = value
            self.aaaa[key] = answer
            if key[1] in self.dcs and answer.outcome is DnsOutcome.DATA:
                for record in answer.records:
                    self.add_address(self.dcs[key[1]], record)
        elif kind == "tcp":
            self.tcp[key[0]] = value
        elif kind == "port":
            name, address, spec = key
            self.dcs[name].probes[(address, spec)] = value
        elif kind == "extra":
            self.extra.extend(value)

    def run(self, extra: Callable[[], list[CheckResult]] | None) -> None:
        for server in self.o.dns_servers:
            for question in self.base():
                self.ask(server, question)
            self.ask(server, self.locator, tcp=True)
        if extra is not None:
            self.submit("extra", None, extra)
        for name in self.o.dcs:
            self.add_dc(name)
        while self.pending:
            done, _ = wait(list(self.pending), return_when=FIRST_COMPLETED)
            for future in done:
                kind, key = self.pending.pop(future)
                try:
                    value = future.result()
                except Exception as exc:
                    if kind != "extra" or isinstance(exc, OpsbookError):
                        raise  # bad input (e.g. Graph options): stop at once
                    self.extra_error = exc
                    continue
                self.handle(kind, key, value)

    def base(self) -> list[Question]:
        questions = base_questions(self.o.domain)
        return questions if self.locator in questions else [*questions, self.locator]

    def questions(self) -> list[Question]:
        dc_questions = [(name, "A") for name in self.dcs if not is_ip(name)]
        return [*self.base(), *dc_questions]


def _discovery(options: AdsyncOptions, run: _Run) -> CheckResult:
    domain = options.domain
    rows = [{"dc": dc.name, "address": dc.address, "addresses": list(dc.addresses)} for dc in run.dcs.values()]
    per_server: dict[str, list[str]] = {}
    for server in run.servers:
        answer = run.answers.get((server, run.locator))
        if answer is not None and answer.outcome is DnsOutcome.DATA:
            per_server[server] = sorted(t for t, _ in answer.srv_targets())
    details: dict[str, Any] = {"source": "--dc" if options.dcs else f"SRV {run.locator[0]}", "dcs": rows,
                               "srv_targets_per_server": per_server}
    if run.cut:
        details["not_probed"] = {"count": len(run.cut), "max_dcs": options.max_dcs, "sample": run.cut[:20]}
    if not run.dcs:
        return CheckResult("adsync.dc.discovery", domain, "domain controller discovery", Status.CRITICAL,
                           f"no domain controller found: no DNS server returns SRV {run.locator[0]}",
                           details=details, metrics={"dcs": 0})
    names = ", ".join(f"{d.name} ({d.address or 'no address'})" for d in run.dcs.values())
    source = "given with --dc" if options.dcs else "from SRV"
    summary = f"{len(run.dcs)} domain controller(s) {source}: {names}"
    status = Status.OK
    if len({tuple(v) for v in per_server.values()}) > 1:
        status = Status.WARNING
        everyone = set.intersection(*(set(v) for v in per_server.values()))
        extra = [f"{server} also lists {', '.join(sorted(set(v) - everyone))}"
                 for server, v in per_server.items() if set(v) - everyone]
        summary += ("; the DNS servers disagree on the DC list (stale SRV records?)"
                    + (f": {'; '.join(extra)}" if extra else ""))
    if run.cut:
        status = Status.WARNING
        summary += (f"; {len(run.cut)} more DC(s) in the SRV answers not probed (at most {options.max_dcs}, "
                    "--max-dcs; the DNS server chooses these addresses)")
    return CheckResult("adsync.dc.discovery", domain, "domain controller discovery", status, summary,
                       details=details, metrics={"dcs": len(run.dcs)})


def collect(options: AdsyncOptions, extra: Callable[[], list[CheckResult]] | None = None) -> list[CheckResult]:
    """Run every probe and return the check results (DNS, discovery, ports, then *extra*'s).

    *extra* (the Graph checks) runs in the same pool, concurrently with the probes. An
    :class:`~runbooks.errors.OpsbookError` from it (bad input) is raised at once.
    """
    if not options.dns_servers:
        raise OpsbookError("no DNS server to ask: give --dns ADDRESS")
    workers = max(1, options.concurrency)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="opsbook-adsync")
    run = _Run(options, pool)
    try:
        run.run(extra)
    except BaseException:
        # Do not wait for probes still in flight: each ends by itself within the timeout.
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    advertised = None if options.dcs else run.advertised
    results = assess_dns(options.domain, run.servers, run.answers, run.questions(), run.tcp, advertised=advertised)
    if options.dns_from_resolv_conf:
        source = assess_dns_source(run.servers, [s.host for s in options.dns_servers])
        if source is not None:
            results.insert(0, source)
    results.append(_discovery(options, run))
    asked_rpc = any(spec.rpc_dynamic for spec in options.ports)
    for dc in run.dcs.values():
        if dc.address is None:
            results.append(unresolved_dc(dc.name, run.servers))
            continue
        every: list[PortProbe] = []
        for address in dc.addresses:
            probes = [dc.probes[(address, spec)] for spec in options.ports if (address, spec) in dc.probes]
            every.extend(probes)
            target = dc.name if len(dc.addresses) == 1 or address == dc.address else f"{dc.name} [{address}]"
            results.append(assess_dc(dc.name, address, probes, asked_rpc, target=target))
        for found in (assess_clock(dc.name, every, options.skew), assess_ldap(dc.name, every)):
            if found is not None:
                results.append(found)
        for probe in every if options.ldaps_certs else ():
            if probe.spec.proto == "tcp" and probe.spec.port in (636, 3269):
                ldaps = assess_ldaps(dc.name, probe, options.ca_file)
                if ldaps is not None and all((r.id, r.target) != (ldaps.id, ldaps.target) for r in results):
                    results.append(ldaps)
    results.extend(run.extra)
    if run.extra_error is not None:
        exc = run.extra_error
        results.append(CheckResult("adsync.graph", "graph", "tenant sync (Microsoft Graph)", Status.UNKNOWN,
                                   f"the Graph check failed with an internal error ({exc.__class__.__name__})"))
    return results


def run_check(options: AdsyncOptions, extra: Callable[[], list[CheckResult]] | None = None) -> Report:
    """The whole ``adsync check`` as a report."""
    report = Report("adsync check")
    report.checks.extend(collect(options, extra))
    report.extra["adsync"] = {
        "domain": options.domain,
        "dns_servers": [server_label(s.host, s.port) for s in options.dns_servers],
        "timeout_s": options.timeout,
        "ports": [str(p) for p in options.ports] if len(options.ports) <= 64 else f"{len(options.ports)} ports",
    }
    return report.finish()
