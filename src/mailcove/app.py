"""The composition root: builds the server from the settings and runs its lifecycle.

    prepare()  everything that can fail because of the configuration, in an order where nothing
               is served yet: logging, listener plan, data dir (0700), TLS, binding every
               socket and the control socket. Failures raise ConfigError naming file and key.
    run()      opens the store, starts the listeners, prints the banner, serves until SIGTERM or
               SIGINT, then shuts down gracefully (stop accepting, let sessions and deliveries
               finish within [server] shutdown_timeout, close the store). SIGHUP reloads TLS.

The protocols are wired here, typed: each protocol package defines a dataclass of what it needs
(SmtpDeps, ImapDeps, Pop3Deps, WebDeps) and a server built from it, once per process, whose
`handler(listener)` is the `net.listeners.Handler` of each of its listeners and whose `aclose()`
runs after the sessions drained. PROTOCOL_OF maps each listener to its protocol. `App(...,
handlers=...)` puts a given handler in place of a listener's protocol (tests plug a protocol in
this way), or None for none: such a listener is shown as "not yet available" and is not bound,
so no port accepts connections only to do nothing."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Protocol, TextIO

from mailcove import __version__
from mailcove.config import ConfigError, Settings
from mailcove.config.settings import IMPLICIT_TLS_LISTENERS, LISTENER_NAMES
from mailcove.core.clock import SYSTEM_CLOCK, Clock
from mailcove.delivery.local import LocalInjection
from mailcove.directory import Directory, open_directory
from mailcove.directory.passwords import PasswordVerifier
from mailcove.directory.shared_checks import SharedChecks
from mailcove.directory.shared_throttle import shared_throttle
from mailcove.logs import setup_logging
from mailcove.net import privileges
from mailcove.net.addresses import ListenerPlan, parse_overrides, plan_listeners
from mailcove.net.control import Limits, LocalReply, LocalServer, MessageBody, Peer, Request
from mailcove.net.limits import ConnectionCaps
from mailcove.net.listeners import BindError, BoundListener, ConnectionTracker, Handler, Listener, bind_all
from mailcove.net.shared_counts import SharedCounts, shared_caps
from mailcove.net.systemd import notify as sd_notify
from mailcove.net.tls import CertificateInfo, TlsConfigError, TlsHolder, describe_certificate, ensure_certificate
from mailcove.net.workers import Supervisor, WorkerRole, WorkerStartError, default_count
from mailcove.store.api import MailStore

if TYPE_CHECKING:
    from pathlib import Path

    from mailcove.mailauth import InboundChecker
    from mailcove.queue import QueueRunner

log = logging.getLogger("mailcove.app")

# The cyclic garbage collector's thresholds once serving (Python's default: 700, 10, 10). A large
# command makes objects in batches (500 MessageInfo objects of ~20 objects each per store read);
# at 700 every batch is promoted to the old generation while still in use, and the old generation
# is walked whole, on the event loop, each time it has grown by a quarter: a pause as long as the
# heap is big (issue 13, measured in docs/fairness.md). With the youngest collected every 50,000
# allocations most batches are garbage before their first collection; the middle one every 5
# young collections keeps its own walk (at most 250,000 objects) short.
GC_THRESHOLD = (50_000, 5, 10)


class Proto(Enum):
    """The protocols; each is one package with its own dependencies dataclass and server."""

    SMTP = "smtp"
    IMAP = "imap"
    POP3 = "pop3"
    WEB = "web"


PROTOCOL_OF: dict[str, Proto] = {
    "smtp": Proto.SMTP,
    "submission": Proto.SMTP,
    "submissions": Proto.SMTP,
    "imap": Proto.IMAP,
    "imaps": Proto.IMAP,
    "pop3": Proto.POP3,
    "pop3s": Proto.POP3,
    "http": Proto.WEB,
    "https": Proto.WEB,
}
assert set(PROTOCOL_OF) == set(LISTENER_NAMES)
# What the workers after the first serve (net/workers.py): the long sessions whose commands cost
# CPU. SMTP, HTTP, the queue and the control socket stay with the first worker.
SECONDARY_PROTOCOLS = frozenset({Proto.IMAP, Proto.POP3})


class ProtocolServer(Protocol):
    """What each protocol package's server is: a handler per listener, closed at shutdown."""

    def handler(self, listener: str) -> Handler: ...
    def aclose(self) -> Awaitable[None]: ...

STATE_FILE = "serve.json"


class DataDirError(Exception):
    """The data dir is open to other local users and mailcove will not change it."""


def secure_data_dir(d: Path) -> str | None:
    """Make sure no other local user can read the data dir. A dir with group or other bits is
    closed (its group/other bits cleared) when it is empty or looks like a mailcove data dir,
    and the returned line says so; None when it was already private. A foreign-looking dir
    (data_dir = "/var/lib" by mistake) is not touched: DataDirError. OSError if chmod fails."""
    mode = d.stat().st_mode & 0o7777
    if not mode & 0o077:
        return None
    entries = {p.name for p in d.iterdir()}
    if entries and not entries & privileges.MAILCOVE_FILES:
        raise DataDirError(f"{d} has mode {mode:o} (other local users can read it) and does not look like a "
                           f"mailcove data dir: run chmod 700 {d} or fix data_dir")
    try:
        os.chmod(d, mode & ~0o077)
    except OSError as exc:
        raise DataDirError(f"{d} has mode {mode:o} (other local users can read the mail in it) and cannot be "
                           f"changed ({exc.strerror or exc}): run chmod 700 {d}") from None
    return f"data dir {d} had mode {mode:o}, so other local users could read mail: changed it to {mode & ~0o077:o}"


class StartupError(Exception):
    """Not a configuration problem, but the server cannot start (store failed to open, ...)."""


class App:
    def __init__(self, settings: Settings, listen: Sequence[str] = (), *, out: TextIO | None = None,
                 clock: Clock = SYSTEM_CLOCK, handlers: Mapping[str, Handler | None] | None = None) -> None:
        self.settings = settings
        # Set in each worker process when several serve (run_server): None is the only process.
        self.worker: WorkerRole | None = None
        self.clock = clock
        self._listen_args = list(listen)
        self._out = out or sys.stdout
        self.plans: list[ListenerPlan] = []
        # listener -> the handler given in place of its protocol, or None for no protocol
        self.given_handlers: dict[str, Handler | None] = dict(handlers or {})
        unknown = set(self.given_handlers) - set(LISTENER_NAMES)
        if unknown:
            raise ValueError(f"unknown listener {sorted(unknown)[0]!r}")
        self.served: set[str] = set()  # the listeners that have a handler
        self.servers: list[ProtocolServer] = []
        self.bound: dict[str, BoundListener] = {}
        self.tls = TlsHolder(settings.tls, settings.data_dir, settings.hostname)
        self.tracker: ConnectionTracker | None = None
        self.control: LocalServer | None = None
        self.store: MailStore | None = None
        self.directory: Directory | None = None
        self.listeners: list[Listener] = []
        self.queue: QueueRunner | None = None
        self.injection: LocalInjection | None = None  # what the control socket's requests do
        self._stop: asyncio.Event | None = None
        # Who serves, for the banner: set by run_server after the privilege drop.
        self.run_as = ""
        self.stopped_cleanly = False  # run() returned after a graceful shutdown

    # --- phase 1: everything that can fail on configuration, before anything is served ---------

    def prepare(self) -> None:
        s = self.settings
        try:
            setup_logging(s.log)
        except ValueError as exc:
            raise ConfigError(s.source, "log.level", str(exc).split(": ", 1)[-1]) from None
        except OSError as exc:
            raise ConfigError(s.source, "log.file", f"{s.log.file}: {exc.strerror or exc}") from None
        self.plans = plan_listeners(s, parse_overrides(self._listen_args))
        self.served = {p.name for p in self.plans
                       if p.name not in self.given_handlers or self.given_handlers[p.name] is not None}
        self._make_data_dir()
        if s.tls.enabled:
            try:
                self.tls.load()
            except TlsConfigError as exc:
                raise ConfigError(s.source, exc.key, exc.message) from None
            except OSError as exc:
                raise ConfigError(s.source, "data_dir", f"cannot write the certificate: {exc}") from None
        to_bind = [p for p in self.plans if p.addresses and p.name in self.served]
        try:
            self.bound = bind_all(to_bind)
        except BindError as exc:
            source = next(p.source for p in self.plans if p.name == exc.listener)
            raise ConfigError(source, f"listen.{exc.listener}", f"{exc.address}: {exc.message}") from None
        self.tracker = ConnectionTracker()
        # The handlers need the store and the directory, which run() opens: they are looked up
        # per request (a request can only arrive once run() serves the socket).
        self.control = LocalServer(
            s.control_socket_path,
            {"DELIVER": self._control_request, "SUBMIT": self._control_request},
            self.tracker,
            Limits(s.server.max_message_bytes, s.server.max_recipients, s.smtp.command_timeout, s.smtp.data_timeout,
                   s.smtp.min_data_rate),
            clock=self.clock,
        )
        try:
            self.control.bind()
        except OSError as exc:
            self._close_bound()
            raise ConfigError(s.source, "server.control_socket", str(exc)) from None

    def _make_data_dir(self) -> None:
        d = self.settings.data_dir
        # Every file the server creates (mail.db and its -wal/-shm, serve.json, spools, blobs,
        # keys) is private whatever umask it was started with, as Postfix's
        # master does (umask 077). Sockets meant for others are chmod-ed explicitly.
        os.umask(0o077)
        try:
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
            fixed = secure_data_dir(d)
        except DataDirError as exc:
            raise ConfigError(self.settings.source, "data_dir", str(exc)) from None
        except OSError as exc:
            raise ConfigError(self.settings.source, "data_dir", f"{d}: {exc.strerror or exc}") from None
        if fixed:
            log.warning("%s", fixed)

    def _close_bound(self) -> None:
        for bl in self.bound.values():
            for sock in bl.sockets:
                sock.close()

    def _remove_control_socket(self) -> None:
        # With workers, the socket's file is the supervisor's: a worker that fails leaves it.
        if self.worker is None and self.control is not None:
            self.control.remove_socket()

    @property
    def primary(self) -> bool:
        """The process that runs the queue, the control socket, SMTP and HTTP."""
        return self.worker is None or self.worker.primary

    @property
    def _runs_text_index(self) -> bool:
        """Whether this process's store runs the background full-text indexer: with several
        workers, only those that do not serve SMTP. Indexing takes about twice a delivery's CPU;
        in the SMTP process it took that from the deliveries (and their GIL), in another worker
        it uses another core. The store's lease still lets only one of them index at a time."""
        return self.worker is None or self.worker.count == 1 or not self.worker.primary

    def become_worker(self, role: WorkerRole) -> None:
        """In a freshly forked worker: keep only the sockets this worker serves. The others stay
        open in the supervisor (for the next fork) and in the worker that serves them."""
        self.worker = role
        if role.primary:
            return
        for name in [n for n in self.bound if PROTOCOL_OF[n] not in SECONDARY_PROTOCOLS]:
            for sock in self.bound.pop(name).sockets:
                sock.close()
        assert self.control is not None
        self.control.close_inherited()

    # --- phase 2: serve ----------------------------------------------------------------------

    async def run(self) -> int:
        from mailcove.store.factory import open_store

        assert self.tracker is not None and self.control is not None, "prepare() first"
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            self.store = open_store(self.settings, text_index=self._runs_text_index)
            await self.store.start()
            await self.store.collect_orphans()
        except Exception as exc:
            self._close_bound()
            self._remove_control_socket()
            raise StartupError(f"cannot open the store in {self.settings.data_dir}: {exc}") from exc
        try:
            self.directory = open_directory(self.settings, store=self.store, clock=self.clock, **self._shared_auth())
            await self.directory.start()
        except Exception as exc:
            await self.store.close()
            self._close_bound()
            self._remove_control_socket()
            raise StartupError(f"cannot open the directory in {self.settings.data_dir}: {exc}") from exc
        try:
            from mailcove.dns import make_resolver
            from mailcove.mailauth import InboundChecker
            from mailcove.queue import QueueRunner

            # one resolver (and its cache) for the queue's MX lookups and the inbound checks
            resolver = make_resolver(self.settings.dns.nameservers, self.settings.dns.timeout)
            if self.primary:
                self.queue = QueueRunner(self.settings, self.store, self.directory, resolver, clock=self.clock)
                # the administrator's socket: no sending limit (the submit socket has them)
                self.injection = LocalInjection(self.settings, self.store, self.directory, queued=self.queue.wake)
            checker = InboundChecker(self.settings, resolver) if self.settings.mailauth.enabled else None
            handlers = await self._start_protocols(checker)
            for name, bound in self.bound.items():
                handler = handlers[name]
                listener = Listener(
                    bound,
                    handler,
                    self.tracker,
                    tls=self.tls if self.settings.tls.enabled else None,
                    implicit_tls=name in IMPLICIT_TLS_LISTENERS,
                )
                await listener.start()
                self.listeners.append(listener)
            if self.queue is not None:
                await self.control.start()
                self.queue.start()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._request_stop, sig)
            loop.add_signal_handler(signal.SIGHUP, self._reload)
            settle_gc()
            if self.worker is not None:
                self.worker.ready()  # the supervisor writes the state and the banner
            else:
                self._write_state()
                self._print_banner()
                sd_notify("READY=1\nSTATUS=serving")
            await self._stop.wait()
            await self._shutdown()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)
            if self.directory is not None:
                await self.directory.close()
            if self.store is not None:
                await self.store.close()
            if self.worker is None:  # with workers, the supervisor owns both files
                self.control.remove_socket()
                with contextlib.suppress(FileNotFoundError):
                    (self.settings.data_dir / STATE_FILE).unlink()
        log.info("stopped")
        self.stopped_cleanly = True
        return 0

    def _shared_auth(self) -> dict[str, object]:
        """With workers: the login throttle and the bound on password checks waiting are the
        server's, shared through the data dir, not each worker's (docs/architecture.md, 7)."""
        if self.worker is None:
            return {}
        s = self.settings
        checks = SharedChecks(s.data_dir, self.worker.index, self.worker.count)
        return {"throttle": shared_throttle(s.auth, s.data_dir, clock=self.clock),
                "verifier": PasswordVerifier.from_settings(s.auth, clock=self.clock, checks=checks)}

    async def _start_protocols(self, mailauth: InboundChecker | None) -> dict[str, Handler]:
        """The handler of every bound listener: the given one, or its protocol's, each protocol's
        server built once (from the dataclass its package defines) for all its listeners."""
        # Imported here: every CLI command imports this module (secure_data_dir,
        # certificate_info), and the four protocol servers take about half a second to import.
        from mailcove.imap.server import ImapDeps, ImapServer
        from mailcove.pop3.server import Pop3Deps, Pop3Server
        from mailcove.smtp import server as smtp_server
        from mailcove.smtp.server import SmtpDeps
        from mailcove.web.server import WebDeps, WebServer

        assert self.store is not None and self.directory is not None and self.tracker is not None
        s = self.settings
        if self.worker is None:
            caps = ConnectionCaps.from_settings(s)
        else:  # limits of the server, not of one worker
            caps = shared_caps(s, SharedCounts(s.data_dir, self.worker.index, self.worker.count))
        servers: dict[Proto, ProtocolServer] = {}
        handlers: dict[str, Handler] = {}
        for name in self.bound:
            given = self.given_handlers.get(name)
            if given is not None:
                handlers[name] = given
                continue
            proto = PROTOCOL_OF[name]
            server = servers.get(proto)
            if server is None:
                match proto:
                    case Proto.SMTP:
                        server = await smtp_server.start(SmtpDeps(
                            s, self.store, self.directory, self.tracker, caps.smtp, self.clock,
                            queue=self.queue, mailauth=mailauth))
                    case Proto.IMAP:
                        server = ImapServer(ImapDeps(s, self.store, self.directory,
                                                     self.tls if s.tls.enabled else None, caps.imap, self.clock))
                    case Proto.POP3:
                        server = Pop3Server(Pop3Deps(s, self.store, self.directory, caps.pop3, self.clock))
                    case Proto.WEB:
                        server = WebServer(WebDeps(s, self.directory, caps.http, self.clock))
                servers[proto] = server
                self.servers.append(server)
            handlers[name] = server.handler(name)
        return handlers

    def _request_stop(self, sig: int) -> None:
        if self._stop is not None and not self._stop.is_set():
            log.info("%s: shutting down (up to %.0fs for sessions in flight)", signal.Signals(sig).name,
                     self.settings.server.shutdown_timeout)
            sd_notify("STOPPING=1")
            self._stop.set()

    def _reload(self) -> None:
        log.info("SIGHUP: reloading TLS")
        if self.settings.tls.enabled:
            self.tls.reload()

    async def _shutdown(self) -> None:
        assert self.tracker is not None and self.control is not None
        for listener in self.listeners:
            listener.stop_accepting()
        self.control.stop_accepting()
        cancelled = await self.tracker.drain(self.settings.server.shutdown_timeout)
        if cancelled:
            log.warning("%d sessions did not finish within the shutdown timeout and were closed", cancelled)
        if self.queue is not None:
            # deliveries in flight finish (or their leases make them due again after a restart)
            await self.queue.stop(self.settings.server.shutdown_timeout)
        for server in self.servers:
            with contextlib.suppress(Exception):
                await server.aclose()

    async def _control_request(self, request: Request, peer: Peer, body: MessageBody) -> LocalReply:
        assert self.injection is not None
        return await self.injection.handle(request, peer, body)

    # --- what the world sees -------------------------------------------------------------------

    def listener_addresses(self) -> dict[str, list[str]]:
        return {name: bl.addresses for name, bl in self.bound.items()}

    def _write_state(self, workers: Sequence[int] = ()) -> None:
        """<data_dir>/serve.json: pid and the bound addresses, for scripts and the test fixture
        (a port of 0 in the config is only known after binding). With several workers, `pid` is
        the supervisor's (signals go there) and `workers` the workers' pids."""
        state = {
            "pid": os.getpid(),
            "workers": list(workers),
            "version": __version__,
            "data_dir": str(self.settings.data_dir.resolve()),
            "control_socket": str(self.settings.control_socket_path.resolve()),
            "listeners": self.listener_addresses(),
        }
        path = self.settings.data_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            os.fchmod(fd, 0o600)  # whatever the umask, and a leftover .tmp of a wider mode
            f.write(json.dumps(state, indent=2))
        os.replace(tmp, path)

    def banner(self, workers: Sequence[int] = ()) -> str:
        s = self.settings
        lines = [f"mailcove {__version__} serving {s.hostname} (pid {os.getpid()})"]
        lines.append(f"  {'data dir':<12} {s.data_dir.resolve()}")
        if workers:
            lines.append(f"  {'workers':<12} {len(workers)} (pids {', '.join(map(str, workers))}; the first also "
                         "runs SMTP, HTTP, the queue and the control socket)")
        for plan in self.plans:
            if plan.name in self.bound:
                where = ", ".join(self.bound[plan.name].addresses)
            elif not plan.addresses:
                where = plan.reason_off or "off"
            else:
                wanted = ", ".join(str(a) for a in plan.addresses)
                where = f"not yet available (no protocol handler; would listen on {wanted})"
            lines.append(f"  {plan.name:<12} {where}")
        lines.append(f"  {'control':<12} {s.control_socket_path.resolve()}")
        if self.run_as:
            lines.append(f"  {'user':<12} {self.run_as}")
        if s.tls.enabled and self.tls.cert_path is not None:
            info = describe_certificate(self.tls.cert_path)
            kind = "self-signed, generated now" if self.tls.generated else (
                "self-signed" if s.tls.cert is None else "configured")
            lines.append(f"  {'tls':<12} {info.subject} ({kind}), expires {info.not_after:%Y-%m-%d}, "
                         f"SHA-256 {info.sha256}")
        else:
            lines.append(f"  {'tls':<12} off ([tls] enabled = false)")
        if s.auth.allow_plaintext:
            mode = "LAB MODE: plaintext passwords allowed" + (" over unencrypted links" if not s.tls.enabled else "")
            lines.append(f"  {'auth':<12} {mode}")
        else:
            lines.append(f"  {'auth':<12} password login only after TLS")
        lines.append("ready")
        return "\n".join(lines)

    def _print_banner(self, workers: Sequence[int] = ()) -> None:
        self._out.write(self.banner(workers) + "\n")
        self._out.flush()

    def supervise(self, count: int) -> int:
        """Serve with `count` worker processes (net/workers.py) until SIGTERM or SIGINT; this
        process only supervises. prepare() (and the privilege drop) first."""
        assert self.control is not None
        supervisor = Supervisor(count, self._serve_as_worker, shutdown_timeout=self.settings.server.shutdown_timeout,
                                restarted=self._write_state)
        try:
            supervisor.start()
        except WorkerStartError as exc:
            self._close_bound()
            self.control.remove_socket()
            raise StartupError(str(exc)) from None
        try:
            self._write_state(supervisor.pids())
            self._print_banner(supervisor.pids())
            sd_notify("READY=1\nSTATUS=serving")
            code = supervisor.run()
            sd_notify("STOPPING=1")
        finally:
            self._close_bound()
            self.control.remove_socket()
            with contextlib.suppress(FileNotFoundError):
                (self.settings.data_dir / STATE_FILE).unlink()
        log.info("stopped")
        self.stopped_cleanly = code == 0
        return code

    def _serve_as_worker(self, role: WorkerRole) -> int:
        self.become_worker(role)
        try:
            return _run_loop(self)
        except StartupError as exc:  # said once, by the supervisor, as a one-process server says it
            role.failed(str(exc))
            return 1


def settle_gc() -> None:
    """Once serving starts: what start-up built (modules, settings, TLS contexts, the directory)
    lives as long as the process, so after one collection gc.freeze() takes it out of every later
    collection's walk; and the thresholds become GC_THRESHOLD."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def run_server(settings: Settings, listen: Sequence[str] = (), user: str | None = None, *,
               handlers: Mapping[str, Handler | None] | None = None, workers: int | None = None) -> int:
    """`mailcove serve`: prepare (ConfigError propagates: exit 2), drop root privileges once
    everything privileged is done (net/privileges.py), then serve with uvloop if it is installed,
    in this process or in `workers` worker processes (None: [server] workers; 0: one per core).
    `handlers`: as App's (tests plug a protocol in through it)."""
    target, run_as = privileges.serve_target(settings, user)
    if target is not None:
        privileges.preflight(settings, target)
    data_dir_created = not settings.data_dir.exists()
    log_file_created = settings.log.file is not None and not settings.log.file.exists()
    app = App(settings, listen, handlers=handlers)
    app.prepare()
    if target is not None:
        try:
            privileges.prepare_for_drop(settings, target, data_dir_created=data_dir_created,
                                        log_file_created=log_file_created)
            privileges.drop(target)
        except BaseException:
            app._close_bound()
            if app.control is not None:
                app.control.remove_socket()
            raise
    app.run_as = run_as
    count = workers if workers is not None else settings.server.workers
    count = count or default_count()
    if count > 1:
        return app.supervise(count)
    return _run_loop(app)


def _run_loop(app: App) -> int:
    """app.run() on uvloop if it is installed."""
    try:
        import uvloop

        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(app.run())
    except KeyboardInterrupt:
        # asyncio.Runner re-raises a SIGINT that our own handler already turned into a graceful
        # shutdown; only an interrupt before that finished is a real abort.
        if app.stopped_cleanly:
            return 0
        raise


# --- TLS info for the CLI (which never touches net itself) ------------------------------------


def certificate_info(settings: Settings) -> CertificateInfo:
    """The certificate `mailcove serve` would use, generating the self-signed one if absent.
    Raises ConfigError for unusable configured files."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        cert, key, _generated = ensure_certificate(settings.tls, settings.data_dir, settings.hostname)
        from mailcove.net.tls import build_server_context

        build_server_context(cert, key, settings.tls.min_version)  # same checks as serve
        return describe_certificate(cert)
    except TlsConfigError as exc:
        raise ConfigError(settings.source, exc.key, exc.message) from None
