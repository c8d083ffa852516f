"""The `http` and `https` listeners: `WebServer(WebDeps(...))`, built once per process by app.py;
`handler(listener)` serves each listener.

Routes (docs/autoconfig.md):
    GET  /.well-known/autoconfig/mail/config-v1.1.xml   Thunderbird (also /mail/config-v1.1.xml)
    POST /autodiscover/autodiscover.xml                  Outlook (any letter case)
    GET  /apple/mobileconfig?emailaddress=A              an Apple configuration profile
    GET  /.well-known/mta-sts.txt                        MTA-STS policy, when Host is mta-sts.DOMAIN

Every answer is computed per request from the settings, the listeners the server bound, and the
directory (which reloads itself when the admin CLI changes it), so a new domain or a restart with
other ports is reflected at once. Only domains the directory knows get an answer (404 otherwise);
whether a user exists is never revealed, so the endpoints cannot be used to enumerate accounts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailcove.core.address import Address, AddressError
from mailcove.net.listeners import Connection
from mailcove.web import documents, mtasts
from mailcove.web.clientconfig import Endpoint, ListenerState, endpoints
from mailcove.web.http import App, HttpConnection, Limits, Request, Response, error

if TYPE_CHECKING:
    from mailcove.config import Settings
    from mailcove.core.clock import Clock
    from mailcove.directory.api import Directory
    from mailcove.net.limits import ConnectionCounter

AUTOCONFIG_PATHS = frozenset({"/.well-known/autoconfig/mail/config-v1.1.xml", "/mail/config-v1.1.xml"})
AUTODISCOVER_PATH = "/autodiscover/autodiscover.xml"  # compared case-insensitively (Outlook varies it)
MOBILECONFIG_PATH = "/apple/mobileconfig"
MTA_STS_PATH = "/.well-known/mta-sts.txt"
# Host-name prefixes clients use to reach us (RFC 6186 style names the DNS records point here).
HOST_PREFIXES = ("autoconfig.", "autodiscover.", "mta-sts.", "www.")
MAX_ADDRESS = 320


@dataclass(frozen=True)
class WebDeps:
    """What the web listeners are built from (app.py fills it in)."""

    settings: Settings
    directory: Directory
    connections: ConnectionCounter  # one counter for both listeners
    clock: Clock


class WebApp:
    """The routing and documents, independent of sockets (tests may call it with a Request)."""

    def __init__(self, ctx: WebDeps) -> None:
        self.ctx = ctx
        self.listeners = ListenerState(ctx.settings)

    async def __call__(self, req: Request) -> Response:
        path = req.path
        if path in AUTOCONFIG_PATHS:
            return await self._only(req, ("GET", "HEAD"), self.autoconfig)
        if path.lower() == AUTODISCOVER_PATH:
            return await self._only(req, ("POST",), self.autodiscover)
        if path == MOBILECONFIG_PATH:
            return await self._only(req, ("GET", "HEAD"), self.mobileconfig)
        if path == MTA_STS_PATH:
            return await self._only(req, ("GET", "HEAD"), self.mta_sts)
        if req.method not in ("GET", "HEAD", "POST"):
            return error(501, f"method {req.method} is not implemented")
        return error(404, f"nothing is served at {path[:200]} (this server answers mail client autoconfiguration: "
                          "/.well-known/autoconfig/mail/config-v1.1.xml)")

    async def _only(self, req: Request, methods: tuple[str, ...], fn: App) -> Response:
        if req.method not in methods:
            allow = ", ".join(methods)
            return error(405, f"{req.method} is not allowed here; use {allow}", [("Allow", allow)])
        return await fn(req)

    # --- helpers ------------------------------------------------------------------------------

    def _endpoints(self) -> list[Endpoint]:
        return endpoints(self.ctx.settings, self.listeners.ports())

    async def _local_domain(self, domain: str) -> str | None:
        """The domain as the client wrote it (lower-case) when it is one of ours, else None."""
        d = domain.strip().rstrip(".").lower()
        if not d or len(d) > 253:
            return None
        return d if await self.ctx.directory.is_local_domain(d) else None

    async def _domain_from_host(self, host: str) -> str | None:
        """autoconfig.hamap.local -> hamap.local; mx1.hamap.local -> hamap.local (the first local
        domain among the name and its parents)."""
        name = host
        for prefix in HOST_PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix):]
                break
        labels = name.split(".")
        for i in range(len(labels) - 1):
            found = await self._local_domain(".".join(labels[i:]))
            if found:
                return found
        return None

    @staticmethod
    def _address(text: str) -> Address | None:
        if len(text) > MAX_ADDRESS:
            return None
        try:
            return Address.parse(text.strip())
        except AddressError:
            return None

    # --- Thunderbird ----------------------------------------------------------------------------

    async def autoconfig(self, req: Request) -> Response:
        raw = req.param("emailaddress")
        email: str | None = None
        if raw:
            addr = self._address(raw)
            if addr is None:
                return error(400, "emailaddress is not a valid mail address")
            domain = await self._local_domain(addr.domain)
            if domain is None:
                return error(404, f"{addr.domain} is not a mail domain of this server")
            email = f"{addr.local}@{domain}"
        else:
            # Thunderbird for Android asks without the address: the Host names the domain.
            domain = await self._domain_from_host(req.host)
            if domain is None:
                return error(404, f"no mail domain of this server matches the host {req.host[:100]!r}; "
                             "add ?emailaddress=")
        eps = self._endpoints()
        if not eps:
            return error(404, "no IMAP/POP3/SMTP listener that a client could log in to is running")
        body = documents.thunderbird(domain, email, eps)
        return Response(200, body, "application/xml; charset=utf-8", [("Cache-Control", "no-cache")])

    # --- Outlook --------------------------------------------------------------------------------

    async def autodiscover(self, req: Request) -> Response:
        try:
            parsed = documents.parse_autodiscover(req.body)
        except documents.BadAutodiscoverRequest as exc:
            return error(400, str(exc))
        if parsed.schema.lower() != documents.OUTLOOK_SCHEMA.lower():
            return error(404, f"only the Outlook response schema is served ({documents.OUTLOOK_SCHEMA}); "
                         "Exchange ActiveSync is not available")
        addr = self._address(parsed.email)
        if addr is None:
            return error(400, "EMailAddress is not a valid mail address")
        domain = await self._local_domain(addr.domain)
        if domain is None:
            return error(404, f"{addr.domain} is not a mail domain of this server")
        eps = self._endpoints()
        if not eps:
            return error(404, "no IMAP/POP3/SMTP listener that a client could log in to is running")
        body = documents.autodiscover(f"{addr.local}@{domain}", eps)
        return Response(200, body, "application/xml; charset=utf-8", [("Cache-Control", "no-cache")])

    # --- Apple --------------------------------------------------------------------------------

    async def mobileconfig(self, req: Request) -> Response:
        raw = req.param("emailaddress")
        if not raw:
            return error(400, "add ?emailaddress=you@yourdomain")
        addr = self._address(raw)
        if addr is None:
            return error(400, "emailaddress is not a valid mail address")
        domain = await self._local_domain(addr.domain)
        if domain is None:
            return error(404, f"{addr.domain} is not a mail domain of this server")
        email = f"{addr.local}@{domain}"
        body = documents.mobileconfig(domain, email, self._endpoints())
        if body is None:
            return error(404, "an incoming (IMAP or POP3) and an outgoing (SMTP) listener must both be running")
        filename = f"{domain}.mobileconfig"
        return Response(200, body, documents.MOBILECONFIG_TYPE,
                        [("Content-Disposition", f'attachment; filename="{filename}"'), ("Cache-Control", "no-cache")])

    # --- MTA-STS ------------------------------------------------------------------------------

    async def mta_sts(self, req: Request) -> Response:
        host = req.host
        if not host.startswith("mta-sts.") or await self._local_domain(host[len("mta-sts."):]) is None:
            return error(404, "the MTA-STS policy is served to Host: mta-sts.DOMAIN for a local DOMAIN")
        return Response(200, mtasts.policy_text(self.ctx.settings).encode(), "text/plain; charset=utf-8")


class WebHandler:
    """One per listener: the connection caps and the loop over requests."""

    def __init__(self, ctx: WebDeps, app: WebApp, listener: str) -> None:
        self.ctx = ctx
        self.listener = listener
        self.app = app
        self.connections = ctx.connections

    def limits(self) -> Limits:
        w = self.ctx.settings.web
        return Limits(w.max_header_bytes, w.max_body_bytes, w.request_timeout, w.keepalive_timeout,
                      w.max_requests_per_connection)

    async def __call__(self, conn: Connection) -> None:
        ip = conn.peer_ip
        http = HttpConnection(conn.reader, conn.writer, self.app, self.limits(), closing=conn.closing,
                              peer_ip=ip, log=conn.log, clock=self.ctx.clock)
        if not self.connections.try_add(ip):
            conn.log.warning("http: too many connections: %s", self.connections.describe(ip))
            await http.refuse(error(503, "too many connections; try again later", [("Retry-After", "5")]))
            return
        try:
            await http.serve()
        finally:
            self.connections.remove(ip)


class WebServer:
    def __init__(self, deps: WebDeps) -> None:
        self.deps = deps
        self.app = WebApp(deps)

    def handler(self, listener: str) -> WebHandler:
        return WebHandler(self.deps, self.app, listener)

    async def aclose(self) -> None:
        pass
