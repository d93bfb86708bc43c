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
from functools import partial
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
    """The event loop: submit, wait for whatever finishes, hand each result to its handler.

    A probe's result can unlock more probes (an SRV answer names DCs, whose A/AAAA answers
    give addresses, whose ports are then probed), so the work is not known up front.
    """

    def __init__(self, options: AdsyncOptions, pool: ThreadPoolExecutor) -> None:
        self.options = options
        self.pool = pool
        #: Each future and the handler its result goes to.
        self.pending: dict[Future[Any], Callable[[Any], None]] = {}
        self.servers = [server_label(s.host, s.port) for s in options.dns_servers]
        self.answers: dict[tuple[str, Question], DnsAnswer] = {}
        self.tcp: dict[str, DnsAnswer] = {}
        self.dcs: dict[str, _Dc] = {}
        #: The results of the tenant (Graph) checks run beside the probes, or why they failed.
        self.tenant_results: list[CheckResult] = []
        self.tenant_error: BaseException | None = None
        self.locator = dc_locator_question(options.domain, options.site)
        #: The DCs each server's own SRV answer lists (a server is judged by what it advertises).
        self.advertised: dict[str, set[str]] = {}
        #: DCs in SRV answers beyond --max-dcs (not probed).
        self.cut: list[str] = []
        #: AAAA answers (not judged as DNS health: an IPv4-only DC has none).
        self.aaaa: dict[tuple[str, str], DnsAnswer] = {}

    def submit(self, handler: Callable[[Any], None], func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.pending[self.pool.submit(func, *args, **kwargs)] = handler

    def ask(self, server: HostPort, question: Question, tcp: bool = False) -> None:
        label = server_label(server.host, server.port)
        handler = partial(self.on_tcp_answer if tcp else self.on_answer, (label, question))
        self.submit(
            handler,
            dns_query,
            server.host,
            question[0],
            question[1],
            port=server.port,
            timeout=self.options.timeout,
            tcp=tcp,
        )

    def add_dc(self, name: str, hints: tuple[str, ...] = (), from_srv: bool = False) -> None:
        options = self.options
        key = name.rstrip(".").lower()
        if key in self.dcs:
            dc = self.dcs[key]
        elif from_srv and len(self.dcs) >= options.max_dcs:
            if key not in self.cut:
                self.cut.append(key)
            return
        else:
            dc = self.dcs[key] = _Dc(key)
            if is_ip(key):
                self.add_address(dc, key)
            else:
                for server in options.dns_servers:
                    self.ask(server, (key, "A"))
                    label = server_label(server.host, server.port)
                    self.submit(
                        partial(self.on_aaaa_answer, (label, key)),
                        dns_query,
                        server.host,
                        key,
                        "AAAA",
                        port=server.port,
                        timeout=options.timeout,
                    )
                if key in options.resolve:
                    self.add_address(dc, options.resolve[key])
        if key not in options.resolve:
            for hint in hints:
                if is_ip(hint):
                    self.add_address(dc, hint)

    def add_address(self, dc: _Dc, address: str) -> None:
        """Probe every port of one more address of *dc* (each A and AAAA, at most MAX_ADDRESSES)."""
        options = self.options
        if address in dc.addresses or len(dc.addresses) >= MAX_ADDRESSES:
            return
        if dc.name in options.resolve and dc.addresses:
            return  # --resolve pins the address
        dc.addresses.append(address)
        for spec in options.ports:
            self.submit(
                partial(self.on_port, (dc.name, address, spec)),
                probe_port,
                address,
                spec,
                options.domain,
                options.timeout,
                dc=dc.name if not is_ip(dc.name) else address,
                ca_file=options.ca_file,
            )

    # ------------------------------------------------------------ handlers
    def on_answer(self, key: tuple[str, Question], answer: DnsAnswer) -> None:
        """A UDP answer: SRV answers name DCs, A answers give a DC's addresses."""
        self.answers[key] = answer
        question = key[1]
        if question == self.locator and answer.outcome is DnsOutcome.DATA:
            targets = [t for t, _port in answer.srv_targets()]
            self.advertised[key[0]] = set(targets)
            if not self.options.dcs:
                for target in targets:
                    self.add_dc(target, answer.additional.get(target, ()), from_srv=True)
        elif question[1] == "A" and question[0] in self.dcs and answer.outcome is DnsOutcome.DATA:
            for record in answer.records:
                self.add_address(self.dcs[question[0]], record)

    def on_aaaa_answer(self, key: tuple[str, str], answer: DnsAnswer) -> None:
        self.aaaa[key] = answer
        if key[1] in self.dcs and answer.outcome is DnsOutcome.DATA:
            for record in answer.records:
                self.add_address(self.dcs[key[1]], record)

    def on_tcp_answer(self, key: tuple[str, Question], answer: DnsAnswer) -> None:
        self.tcp[key[0]] = answer

    def on_port(self, key: tuple[str, str, PortSpec], probe: PortProbe) -> None:
        name, address, spec = key
        self.dcs[name].probes[(address, spec)] = probe

    def on_tenant_results(self, results: list[CheckResult]) -> None:
        self.tenant_results.extend(results)

    def run(self, tenant_check: Callable[[], list[CheckResult]] | None) -> None:
        for server in self.options.dns_servers:
            for question in self.base():
                self.ask(server, question)
            self.ask(server, self.locator, tcp=True)
        if tenant_check is not None:
            self.submit(self.on_tenant_results, tenant_check)
        for name in self.options.dcs:
            self.add_dc(name)
        while self.pending:
            done, _ = wait(list(self.pending), return_when=FIRST_COMPLETED)
            for future in done:
                handler = self.pending.pop(future)
                try:
                    value = future.result()
                except Exception as exc:
                    if handler != self.on_tenant_results or isinstance(exc, OpsbookError):
                        raise  # bad input (e.g. Graph options): stop at once
                    self.tenant_error = exc
                    continue
                handler(value)

    def base(self) -> list[Question]:
        questions = base_questions(self.options.domain)
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
    details: dict[str, Any] = {
        "source": "--dc" if options.dcs else f"SRV {run.locator[0]}",
        "dcs": rows,
        "srv_targets_per_server": per_server,
    }
    if run.cut:
        details["not_probed"] = {"count": len(run.cut), "max_dcs": options.max_dcs, "sample": run.cut[:20]}
    if not run.dcs:
        return CheckResult(
            "adsync.dc.discovery",
            domain,
            "domain controller discovery",
            Status.CRITICAL,
            f"no domain controller found: no DNS server returns SRV {run.locator[0]}",
            details=details,
            metrics={"dcs": 0},
        )
    names = ", ".join(f"{d.name} ({d.address or 'no address'})" for d in run.dcs.values())
    source = "given with --dc" if options.dcs else "from SRV"
    summary = f"{len(run.dcs)} domain controller(s) {source}: {names}"
    status = Status.OK
    if len({tuple(v) for v in per_server.values()}) > 1:
        status = Status.WARNING
        everyone = set.intersection(*(set(v) for v in per_server.values()))
        also_listed = [
            f"{server} also lists {', '.join(sorted(set(v) - everyone))}"
            for server, v in per_server.items()
            if set(v) - everyone
        ]
        summary += "; the DNS servers disagree on the DC list (stale SRV records?)" + (
            f": {'; '.join(also_listed)}" if also_listed else ""
        )
    if run.cut:
        status = Status.WARNING
        summary += (
            f"; {len(run.cut)} more DC(s) in the SRV answers not probed (at most {options.max_dcs}, "
            "--max-dcs; the DNS server chooses these addresses)"
        )
    return CheckResult(
        "adsync.dc.discovery",
        domain,
        "domain controller discovery",
        status,
        summary,
        details=details,
        metrics={"dcs": len(run.dcs)},
    )


def collect(options: AdsyncOptions, tenant_check: Callable[[], list[CheckResult]] | None = None) -> list[CheckResult]:
    """Run every probe and return the check results (DNS, discovery, ports, then *tenant_check*'s).

    *tenant_check* (the Graph checks) runs in the same pool, concurrently with the probes. An
    :class:`~runbooks.errors.OpsbookError` from it (bad input) is raised at once.
    """
    if not options.dns_servers:
        raise OpsbookError("no DNS server to ask: give --dns ADDRESS")
    workers = max(1, options.concurrency)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="opsbook-adsync")
    run = _Run(options, pool)
    try:
        run.run(tenant_check)
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
    results.extend(run.tenant_results)
    if run.tenant_error is not None:
        exc = run.tenant_error
        results.append(
            CheckResult(
                "adsync.graph",
                "graph",
                "tenant sync (Microsoft Graph)",
                Status.UNKNOWN,
                f"the Graph check failed with an internal error ({exc.__class__.__name__})",
            )
        )
    return results


def run_check(options: AdsyncOptions, tenant_check: Callable[[], list[CheckResult]] | None = None) -> Report:
    """The whole ``adsync check`` as a report."""
    report = Report("adsync check")
    report.checks.extend(collect(options, tenant_check))
    report.sections["adsync"] = {
        "domain": options.domain,
        "dns_servers": [server_label(s.host, s.port) for s in options.dns_servers],
        "timeout_s": options.timeout,
        "ports": [str(p) for p in options.ports] if len(options.ports) <= 64 else f"{len(options.ports)} ports",
    }
    return report.finish()
