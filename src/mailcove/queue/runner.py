"""The queue runner: claims due recipients from the store with a lease, groups them by
destination, delivers over reused connections with a per-destination limit, records each
outcome, and sends DSNs (RFC 3464).

At-least-once: an outcome is recorded only after the next hop's final reply; a runner killed in
between leaves the lease to expire, and the recipient is delivered again (the only duplicates)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mailcove.core.clock import SYSTEM_CLOCK, Clock
from mailcove.dns import NotFound, Resolver, TempError, make_resolver
from mailcove.proto.smtp.replies import Reply
from mailcove.queue import dsn, srs
from mailcove.queue.convert import has_8bit, to_7bit
from mailcove.queue.dkim import load_keys, sign
from mailcove.queue.routes import Route, RouteError, Router
from mailcove.queue.smtpclient import HopError, SmtpClient
from mailcove.store.api import OutboundEnvelope, QueueClaim, QueueOutcome

if TYPE_CHECKING:
    from mailcove.config.settings import QueueSettings, Settings
    from mailcove.directory.api import Directory
    from mailcove.store.api import MailStore

log = logging.getLogger("mailcove.queue")

CLAIM_BATCH = 500
# One line per recipient that was deferred or bounced, as `queue list` shows it: the remote reply
# (or why no reply came) last, since it is the remote's free text.
OUTCOME = "queue: id=%d to=<%s> relay=%s status=%s%s reply=%s"


def backoff(attempts: int, q: QueueSettings) -> float:
    """Seconds before the next try after `attempts` tries: retry_minutes, doubling, capped."""
    return min(q.retry_minutes * 60.0 * 2 ** max(attempts - 1, 0), q.max_retry_minutes * 60.0)


@dataclass
class Job:
    """One message's recipients for one destination: one SMTP transaction."""

    queue_id: int
    envelope: OutboundEnvelope
    created: float
    claims: list[QueueClaim]
    outcomes: dict[int, tuple[str, Reply | None, str]] = field(default_factory=dict)  # idx -> (kind, reply, text)
    remote_mta: str = ""
    relay: str = "-"  # the next hop last tried, "name[address]:port" (or the name that did not resolve)
    hop_has_dsn: bool = False
    claimed_at: float = 0.0


class QueueRunner:
    def __init__(self, settings: Settings, store: MailStore, directory: Directory | None,
                 resolver: Resolver | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self.store = store
        self.directory = directory
        self.resolver = resolver or make_resolver(settings.dns.nameservers, settings.dns.timeout)
        self.router = Router(settings, self.resolver)
        self.clock = clock  # wall time: claims, leases, the retry schedule, give-up and warning ages
        q = settings.queue
        self._global = asyncio.Semaphore(max(1, q.max_connections))
        self._per_dest: dict[str, asyncio.Semaphore] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._messages: dict[int, bytes] = {}
        self._srs_secret: bytes | None = None
        self._inflight = 0  # claimed recipients not yet recorded
        self.helo = q.helo_name or settings.hostname
        self._tls_may = ssl.create_default_context()
        self._tls_may.check_hostname = False
        self._tls_may.verify_mode = ssl.CERT_NONE
        self._tls_verify = ssl.create_default_context()

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._loop(), name="mailcove-queue")

    def wake(self) -> None:
        """Look at the queue now (after a submission, `mailcove queue flush`)."""
        self._wake.set()

    async def stop(self, timeout: float = 30.0) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._loop_task
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)

    async def _loop(self) -> None:
        interval = self.settings.queue.poll_interval
        while True:
            # cleared before looking, so a wake() during the look is not lost
            self._wake.clear()
            try:
                n = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("queue run failed")
                n = 0
            if n >= CLAIM_BATCH:
                await asyncio.sleep(0)
                continue
            with contextlib.suppress(TimeoutError):
                await self.clock.wait_for(self._wake.wait(), interval)

    async def run_once(self) -> int:
        """Claim what is due and start delivering it; returns how many recipients were claimed."""
        q = self.settings.queue
        if q.hold or self._inflight >= CLAIM_BATCH:
            # enough claimed and not yet done: claiming more would only let leases run out
            # while the jobs wait for a connection
            return 0
        now = self.clock.time()
        claims = await self.store.queue_claim(now, q.lease_seconds, CLAIM_BATCH - self._inflight)
        if not claims:
            return 0
        self._inflight += len(claims)
        by_msg: dict[int, list[QueueClaim]] = {}
        for c in claims:
            by_msg.setdefault(c.queue_id, []).append(c)
        groups: dict[str, tuple[Route | RouteError, list[Job]]] = {}
        resolved: dict[str, Route | RouteError] = {}
        for qid, cs in by_msg.items():
            per_route: dict[str, list[QueueClaim]] = {}
            for c in cs:
                domain = c.address.rpartition("@")[2].lower()
                route = resolved.get(domain)
                if route is None:
                    try:
                        route = await self.router.route(domain)
                    except RouteError as exc:
                        route = exc
                    resolved[domain] = route
                key = route.key if isinstance(route, Route) else f"error:{domain}"
                per_route.setdefault(key, []).append(c)
                groups.setdefault(key, (route, []))
            for key, rc in per_route.items():
                groups[key][1].append(Job(qid, cs[0].envelope, cs[0].created, rc, claimed_at=now))
        for route, jobs in groups.values():
            if isinstance(route, RouteError):
                for job in jobs:
                    for c in job.claims:
                        job.outcomes[c.idx] = ("perm" if route.permanent else "temp", None,
                                               f"{route.status} {route.text}")
                self._spawn(self._finish_all(jobs))
                continue
            n = max(1, min(self.settings.queue.concurrency_per_destination, len(jobs)))
            for i in range(n):
                self._spawn(self._deliver_chain(route, jobs[i::n]))
        return len(claims)

    def _spawn(self, coro: Any) -> None:
        t = asyncio.create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    # --- delivery ---------------------------------------------------------------------------------

    async def _deliver_chain(self, route: Route, jobs: list[Job]) -> None:
        sem = self._per_dest.setdefault(route.key, asyncio.Semaphore(self.settings.queue.concurrency_per_destination))
        pending = list(jobs)  # jobs not yet recorded
        last_error = "no host to try"
        try:
            async with self._global, sem:
                for name, port in route.hosts:
                    if not pending:
                        break
                    for job in pending:
                        job.relay = name
                    try:
                        addrs = await self.router.addresses(name)
                    except NotFound:
                        last_error = f"5.1.2 host {name} not found"
                        if len(route.hosts) == 1:
                            for job in pending:
                                for c in job.claims:
                                    job.outcomes[c.idx] = ("perm", None, last_error)
                            break
                        continue
                    except TempError as exc:
                        last_error = f"4.4.3 {exc}"
                        continue
                    for addr in addrs:
                        if not pending:
                            break
                        for job in pending:
                            job.relay = f"{name}[{addr}]:{port}"
                        try:
                            await self._session(route, name, addr, port, pending)
                        except HopError as exc:
                            last_error = f"4.4.2 {exc.text}"
                            log.info("queue: %s", exc.text)
                for job in pending:
                    for c in job.claims:
                        job.outcomes.setdefault(c.idx, ("temp", None, last_error))
        finally:
            await self._finish_all(pending)

    async def _session(self, route: Route, name: str, addr: str, port: int, pending: list[Job]) -> None:
        q = self.settings.queue
        implicit = None
        if route.tls == "implicit":
            implicit = self._tls_verify if route.verify else self._tls_may
        client = await SmtpClient.connect(name, addr, port, connect_timeout=q.connect_timeout,
                                          reply_timeout=q.reply_timeout, implicit_tls=implicit,
                                          server_hostname=name)
        try:
            greeting = await client.greet()
            if greeting.code != 220:
                raise HopError(f"{name}[{addr}]: greeting {greeting.code} {greeting.text}", reply=greeting)
            reply = await client.ehlo(self.helo)
            if reply.code != 250:
                raise HopError(f"{name}: EHLO refused: {reply.code} {reply.text}", reply=reply)
            if not client.tls and route.tls in ("may", "starttls") and client.has("STARTTLS"):
                ctx = self._tls_verify if route.verify else self._tls_may
                r = await client.starttls(ctx, name if not _is_ip(name) else None)
                if r.code == 220:
                    reply = await client.ehlo(self.helo)
                    if reply.code != 250:
                        raise HopError(f"{name}: EHLO after STARTTLS refused: {reply.code}", reply=reply)
                elif route.tls == "starttls":
                    raise HopError(f"{name}: STARTTLS refused: {r.code} {r.text}", reply=r)
            if route.tls == "starttls" and not client.tls:
                raise HopError(f"{name}: TLS is required ([relayhost] tls) but not offered")
            if route.username:
                r = await client.auth_plain(route.username, route.password)
                if r.code != 235:
                    raise HopError(f"{name}: AUTH failed: {r.code} {r.enhanced} {r.text}", reply=r)
            while pending:
                job = pending[0]
                if self.clock.time() - job.claimed_at > self.settings.queue.lease_seconds / 2:
                    # the lease is running out: another runner (or this one, after a restart)
                    # may claim the job soon, so it is left for then rather than sent twice
                    pending.pop(0)
                    self._inflight -= len(job.claims)
                    continue
                try:
                    await self._transaction(client, job, f"{name}[{addr}]")
                except (HopError, asyncio.CancelledError):
                    raise
                except Exception as exc:  # e.g. the entry was deleted meanwhile: this job only
                    log.exception("queue: entry %d failed on %s", job.queue_id, name)
                    for c in job.claims:
                        job.outcomes.setdefault(c.idx, ("temp", None, f"4.3.0 {type(exc).__name__}"))
                    await client.reset()
                pending.pop(0)
                # recorded at once, not at the end of the connection: what a kill -9 can
                # duplicate is then only the transaction in flight on each connection
                await self._finish_all([job])
                if client.closing:
                    raise HopError(f"{name}[{addr}]: 421, closing")
        finally:
            await client.quit()

    async def _message(self, queue_id: int) -> bytes:
        data = self._messages.get(queue_id)
        if data is None:
            # The entry's own prefix (our trace) and the body as received: Return-Path is only
            # ever served to the local copies (store.api.MessagePrefix), so nothing is stripped.
            data = await self.store.queue_read(queue_id)
            if len(self._messages) > 64:
                self._messages.clear()
            self._messages[queue_id] = data
        return data

    async def _prepare(self, job: Job, client: SmtpClient) -> tuple[bytes | None, str]:
        """The bytes for this hop, or (None, reason) when the message cannot be sent to it."""
        env = job.envelope
        data = await self._message(job.queue_id)
        if env.smtputf8 and not client.has("SMTPUTF8"):
            return None, "5.6.7 the next hop does not support SMTPUTF8 (RFC 6531) and the message needs it"
        if not client.has("8BITMIME") and (env.body in ("8BITMIME", "BINARYMIME") or has_8bit(data)):
            converted = await asyncio.to_thread(to_7bit, data)
            if converted is None:
                return None, "5.6.3 8-bit headers cannot be converted for a next hop without 8BITMIME"
            data = converted
        if self.settings.dkim.sign:
            domain = _from_domain(data)
            if domain and self.directory is not None and await self.directory.is_local_domain(domain):
                keys = load_keys(self.settings, domain)
                if keys:
                    try:
                        data = await asyncio.to_thread(sign, data, domain, keys) + data
                    except Exception as exc:  # a broken key must not stop the queue
                        log.warning("DKIM signing for %s failed: %s", domain, exc)
        return data, ""

    async def _transaction(self, client: SmtpClient, job: Job, where: str) -> None:
        env = job.envelope
        job.remote_mta = client.host
        job.hop_has_dsn = client.has("DSN")
        data, why = await self._prepare(job, client)
        if data is None:
            for c in job.claims:
                job.outcomes[c.idx] = ("perm", None, why)
            return
        mail = f"FROM:<{await self._envelope_sender(env.sender)}>"
        if client.has("SIZE"):
            mail += f" SIZE={len(data)}"
        if client.has("8BITMIME") and (env.body in ("8BITMIME", "BINARYMIME") or has_8bit(data)):
            mail += " BODY=8BITMIME"
        if env.smtputf8:
            mail += " SMTPUTF8"
        if job.hop_has_dsn:
            if env.ret:
                mail += f" RET={env.ret}"
            if env.envid:
                mail += f" ENVID={_xtext(env.envid)}"
        rcpts = []
        for c in job.claims:
            arg = f"TO:<{c.address}>"
            if job.hop_has_dsn:
                if c.notify:
                    arg += f" NOTIFY={','.join(c.notify)}"
                if c.orcpt:
                    kind, _, addr = c.orcpt.partition(";")
                    arg += f" ORCPT={kind};{_xtext(addr)}"
            rcpts.append(arg)
        t = await client.transaction(mail, rcpts, data)
        assert t.mail is not None
        if t.mail.code != 250:
            kind = "temp" if t.mail.code < 500 else "perm"
            for c in job.claims:
                job.outcomes[c.idx] = (kind, t.mail, "")
            if t.mail.code == 421:
                raise HopError(f"{where}: 421 {t.mail.text}", reply=t.mail)
            return
        for c, r in zip(job.claims, t.rcpts, strict=False):
            if r.code in (250, 251):
                if t.data is None:
                    job.outcomes[c.idx] = ("temp", None, "4.4.2 no answer to DATA")
                elif t.data.code == 250:
                    job.outcomes[c.idx] = ("sent", t.data, "")
                else:
                    job.outcomes[c.idx] = ("temp" if t.data.code < 500 else "perm", t.data, "")
            else:
                job.outcomes[c.idx] = ("temp" if r.code < 500 else "perm", r, "")
        log.info("queue: %d to %s: %s", job.queue_id, where,
                 " ".join(f"<{c.address}>={job.outcomes[c.idx][0]}" for c in job.claims))
        if any(r.code == 421 for r in (*t.rcpts, *([t.data] if t.data else []))):
            if t.data is not None and t.data.code == 250:
                # some recipients took the message: record this job, then leave the connection
                client.closing = True
            else:
                raise HopError(f"{where}: 421", reply=None)

    async def _envelope_sender(self, sender: str) -> str:
        q = self.settings.queue
        if not sender or not q.srs or self.directory is None or "@" not in sender:
            return sender
        domain = sender.rpartition("@")[2]
        if await self.directory.is_local_domain(domain):
            return sender
        if self._srs_secret is None:
            self._srs_secret = srs.load_secret(self.settings.data_dir / "srs.key")
        return srs.forward(sender, q.srs_domain or self.settings.hostname, self._srs_secret, self.clock.time())

    # --- outcomes ---------------------------------------------------------------------------------

    async def _finish_all(self, jobs: list[Job]) -> None:
        for job in jobs:
            try:
                await self._finish(job)
            except Exception:
                log.exception("queue: recording the outcome of entry %d failed", job.queue_id)
            finally:
                self._inflight -= len(job.claims)

    async def _finish(self, job: Job) -> None:
        q = self.settings.queue
        now = self.clock.time()
        env = job.envelope
        outcomes: list[QueueOutcome] = []
        notices: list[dsn.RecipientStatus] = []
        for c in job.claims:
            kind, reply, text = job.outcomes.get(c.idx, ("temp", None, "4.4.2 not attempted"))
            diag = f"{reply.code} {reply.enhanced} {reply.text}".replace("  ", " ") if reply else text
            status = (reply.enhanced if reply and reply.enhanced else text.split(" ", 1)[0]) or (
                "5.0.0" if kind == "perm" else "4.0.0")
            if kind == "temp" and now - job.created >= q.give_up_hours * 3600:
                kind = "perm"
                diag = f"gave up after {q.give_up_hours:g} hours; last error: {diag}"
                status = "4.4.7" if status.startswith("4") else status
            if kind == "sent":
                outcomes.append(QueueOutcome(c.queue_id, c.idx, c.lease, "sent", now, None, c.warned))
                if not job.hop_has_dsn and dsn.wants(c.notify, "relayed", env.sender):
                    notices.append(dsn.RecipientStatus(c.address, c.orcpt, "relayed", "2.0.0", diag,
                                                       job.remote_mta))
            elif kind == "perm":
                log.warning(OUTCOME, job.queue_id, c.address, job.relay, "bounced", "", diag)
                outcomes.append(QueueOutcome(c.queue_id, c.idx, c.lease, "failed", now, diag, c.warned))
                if dsn.wants(c.notify, "failed", env.sender):
                    st = status if status[:1] in "45" else "5.0.0"
                    st = "5" + st[1:] if st.startswith("4") and not diag.startswith("gave up") else st
                    notices.append(dsn.RecipientStatus(c.address, c.orcpt, "failed", st, diag, job.remote_mta))
            else:
                warned = c.warned
                if (not warned and q.delay_warning_hours and now - job.created >= q.delay_warning_hours * 3600):
                    warned = True
                    if dsn.wants(c.notify, "delayed", env.sender):
                        st = status if status.startswith("4") else "4.0.0"
                        notices.append(dsn.RecipientStatus(c.address, c.orcpt, "delayed", st, diag, job.remote_mta))
                delay = backoff(c.attempts + 1, q)
                log.info(OUTCOME, job.queue_id, c.address, job.relay, "deferred", f" retry_in={delay:.0f}s", diag)
                outcomes.append(QueueOutcome(c.queue_id, c.idx, c.lease, "queued", now + delay, diag, warned))
        if notices:
            await self._send_dsn(job, notices, now)
        done = await self.store.queue_record(outcomes)
        for qid in done:
            self._messages.pop(qid, None)

    async def _send_dsn(self, job: Job, notices: list[dsn.RecipientStatus], now: float) -> None:
        from mailcove.delivery import DeliveryPlan, Trace, resolve
        from mailcove.directory.api import Invalid

        env = job.envelope
        try:
            original = await self._message(job.queue_id)
        except Exception:
            original = b""
        q = self.settings.queue
        host = self.settings.hostname
        report = dsn.build(reporting_mta=host, postmaster=f"postmaster@{host}", envelope=env, arrival=job.created,
                           recipients=notices, original=original, now=now,
                           retry_until=job.created + q.give_up_hours * 3600)
        if self.directory is None:
            return
        res = await resolve(self.directory, env.sender)
        if isinstance(res, Invalid):
            log.info("queue: DSN for entry %d dropped: sender <%s> %s", job.queue_id, env.sender, res.reason)
            return
        plan = DeliveryPlan()
        plan.add(res)
        # A DSN has the null reverse-path (RFC 3464 / RFC 5321 4.5.5), so it never bounces back;
        # the local copies get Return-Path: <> from the plan.
        await plan.submit(self.store, report, Trace(), sender="", auth_user="mailcove-dsn", client="local")
        self.wake()
        log.info("queue: DSN (%s) for entry %d sent to <%s>", ",".join(sorted({n.action for n in notices})),
                 job.queue_id, env.sender)


def _xtext(text: str) -> str:
    """RFC 3461 4: xtext, "+" followed by two hex digits for "+", "=" and anything not printable."""
    return "".join(c if 33 <= ord(c) <= 126 and c not in "+=" else f"+{ord(c):02X}" for c in text)


def _is_ip(name: str) -> bool:
    from mailcove.queue.routes import is_ip

    return is_ip(name)


def _from_domain(message: bytes) -> str | None:
    from mailcove.message.addresses import parse_address_list
    from mailcove.message.headers import first_fields

    end = message.find(b"\r\n\r\n")
    head = message[: end + 2 if end >= 0 else len(message)][:256 * 1024]
    fields, _ = first_fields(head, 0, len(head), frozenset({"from"}))
    value = fields.get("from")
    if value is None:
        return None
    for a in parse_address_list(value):
        if a.host:
            return a.host.lower()
    return None
