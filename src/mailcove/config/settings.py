"""Every setting, its type and its default. docs/configuration.md documents each one; keep the
two in step. Sections are plain dataclasses so the loader can check types by introspection and
later issues add a section by adding a dataclass here."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Range:
    """The values a numeric setting accepts; the loader refuses anything outside with the key and
    this range, so a value that would crash later (argon2 with 0 KiB) or be absurd (a negative
    retry time) stops the start instead."""

    least: float | None = None  # the smallest value allowed
    above: float | None = None  # or: values must be greater than this
    most: float | None = None

    def admits(self, value: float) -> bool:
        return ((self.least is None or value >= self.least) and (self.above is None or value > self.above)
                and (self.most is None or value <= self.most))

    def __str__(self) -> str:
        low = f"at least {_num(self.least)}" if self.least is not None else f"more than {_num(self.above)}"
        return low + (f" and at most {_num(self.most)}" if self.most is not None else "")


def _num(value: float | None) -> str:
    return str(int(value)) if value is not None and float(value).is_integer() else str(value)


def bounded(default: float, *, least: float | None = None, above: float | None = None,
            most: float | None = None) -> Any:
    """A numeric setting's default and its Range (every int and float setting has one)."""
    return field(default=default, metadata={"range": Range(least, above, most)})


# name -> (standard port, unprivileged port). Tests and scripts depend on these names.
LISTENER_PORTS: dict[str, tuple[int, int]] = {
    "smtp": (25, 2525),
    "submission": (587, 2587),
    "submissions": (465, 2465),
    "imap": (143, 2143),
    "imaps": (993, 2993),
    "pop3": (110, 2110),
    "pop3s": (995, 2995),
    "http": (80, 8080),
    "https": (443, 8443),
}
LISTENER_NAMES: tuple[str, ...] = tuple(LISTENER_PORTS)
IMPLICIT_TLS_LISTENERS = frozenset({"submissions", "imaps", "pop3s", "https"})


@dataclass
class ListenSettings:
    """Each listener is a list of "HOST:PORT". None means "the default": every address on the
    standard port when the process may bind it, else the unprivileged one. [] switches it off."""

    smtp: list[str] | None = None
    submission: list[str] | None = None
    submissions: list[str] | None = None
    imap: list[str] | None = None
    imaps: list[str] | None = None
    pop3: list[str] | None = None
    pop3s: list[str] | None = None
    # Off unless configured (`http = ["*"]` for every address on the default port): an HTTP port
    # is one more thing exposed, and only useful once DNS points autoconfig.DOMAIN at it.
    http: list[str] | None = field(default_factory=list)
    # The same service over TLS with the server's certificate, also off unless configured: Outlook
    # autodiscover and MTA-STS policy fetches need HTTPS with a certificate valid for the name.
    https: list[str] | None = field(default_factory=list)

    def by_listener(self) -> dict[str, list[str] | None]:
        """Each listener's addresses by its name (the keys are LISTENER_NAMES)."""
        return {"smtp": self.smtp, "submission": self.submission, "submissions": self.submissions,
                "imap": self.imap, "imaps": self.imaps, "pop3": self.pop3, "pop3s": self.pop3s,
                "http": self.http, "https": self.https}


@dataclass
class AuthSettings:
    allow_plaintext: bool = False
    # argon2id parameters for new hashes: OWASP's argon2id minimum (t=2, 19 MiB, p=1), measured
    # at ~40 ms per verify and ~50 logins/s on this 2-core class of machine (docs/architecture.md).
    # Stored hashes are upgraded at the next successful login when these change.
    argon2_time_cost: int = bounded(2, least=1, most=100)
    argon2_memory_kib: int = bounded(19456, least=1024, most=4194304)
    argon2_parallelism: int = bounded(1, least=1, most=64)
    verify_workers: int = bounded(2, least=1, most=256)
    verify_cache_seconds: int = bounded(300, least=0, most=86400)
    # Failed logins per client IP within `failure_window_seconds` before logins are throttled.
    max_failures_per_ip: int = bounded(10, least=1)
    failure_window_seconds: int = bounded(300, least=1, most=604800)
    # Failed logins per account name (from any client) within the window before each login of
    # that account waits before its password is checked (0.5 s, doubling to 5 s). Never a refusal:
    # an attacker can slow a user down but not lock them out.
    failures_per_account_before_delay: int = bounded(5, least=1)


@dataclass
class DirectorySettings:
    # Where postmaster@<every local domain> goes unless a domain defines its own postmaster alias
    # (RFC 5321 section 4.5.1). Empty: only explicit postmaster aliases/users exist.
    postmaster: str = ""
    # How often (at most) the server checks whether the admin CLI changed the directory.
    reload_interval: float = bounded(0.5, least=0, most=3600)
    # Clients on 127.0.0.1 / ::1 may relay without a rule, as Sendmail's "originated locally".
    relay_from_localhost: bool = True
    # Who the users are: "mailcove" (the directory's own argon2 user table) or "system" (the
    # machine's Unix accounts, as the seed's `useradd a; passwd a`; docs/system-users.md).
    # The top-level shorthand `directory = "system"` sets this key.
    users: str = field(default="mailcove", metadata={"choices": ("mailcove", "system")})
    # System users only: check passwords through PAM or by reading /etc/shadow directly.
    system_auth: str = field(default="pam", metadata={"choices": ("pam", "shadow")})
    # The PAM service (/etc/pam.d/<name>); without that file PAM uses /etc/pam.d/other.
    pam_service: str = "mailcove"
    # Unix accounts with a UID in [min, max] are mail users; 0 takes UID_MIN / UID_MAX from
    # /etc/login.defs (1000..60000 when it has none). Root is never a mail user.
    system_min_uid: int = bounded(0, least=0, most=4294967294)
    system_max_uid: int = bounded(0, least=0, most=4294967294)
    # Accounts that are mail users whatever their UID (never root).
    system_users_allow: list[str] = field(default_factory=list)
    # Honour ~/.forward of system users (Sendmail's rules; |program and /file entries are not run).
    system_forward: bool = True


@dataclass
class TlsSettings:
    enabled: bool = True
    # PEM files. Both unset: a self-signed certificate for `hostname` is made on first start and
    # kept in <data_dir>/tls/. `key` unset but `cert` set: the key is read from the cert file.
    cert: Path | None = None
    key: Path | None = None
    # "TLSv1.2" or "TLSv1.3"; older versions are never offered.
    min_version: str = "TLSv1.2"
    # Seconds a client gets to finish a TLS handshake (implicit TLS and STARTTLS).
    handshake_timeout: float = bounded(30.0, above=0, most=3600)


@dataclass
class StoreSettings:
    backend: str = "sqlite"
    dsn: str = ""
    # Deliveries are refused with 4.3.1 when the data dir's filesystem has less free space.
    min_free_bytes: int = bounded(100 * 1024 * 1024, least=0)
    # Bodies up to this size live inside the database (one fsync per group commit); larger ones
    # are written to their own blob file, fsynced before the commit that references them.
    inline_max_bytes: int = bounded(128 * 1024, least=0)
    default_quota_bytes: int = bounded(0, least=0)
    default_quota_messages: int = bounded(0, least=0)
    change_poll_ms: int = bounded(100, least=1, most=60000)
    # PostgreSQL backend: connections this node keeps open to the database (the change listener
    # takes one more).
    pool_size: int = bounded(10, least=1, most=1000)


@dataclass
class LogSettings:
    level: str = "info"
    file: Path | None = None


@dataclass
class ServerSettings:
    # Seconds to let sessions and deliveries in flight finish after SIGTERM.
    shutdown_timeout: float = bounded(30.0, least=0, most=86400)
    # Unix socket for local submission and admin notifications; default <data_dir>/control.sock.
    control_socket: Path | None = None
    # Largest message accepted through the control socket (`mailcove deliver`, `mailcove sendmail`).
    max_message_bytes: int = bounded(64 * 1024 * 1024, least=1)
    # Most recipients one control-socket delivery may name.
    max_recipients: int = bounded(1000, least=1)
    # Started as root, `mailcove serve` binds its ports, then becomes this user (and `group`, or
    # the user's primary group; supplementary groups from /etc/group). Empty: "mailcove" if that
    # account exists, else stay root with a warning. "root": never drop (not recommended).
    user: str = ""
    group: str = ""
    # Processes serving connections (net/workers.py): 0 (the default) is one per core. The first
    # also runs SMTP, HTTP, the queue and the control socket; the others serve IMAP and POP3.
    # The connection caps, the login throttle and the bound on password checks waiting are the
    # server's, shared through files in the data dir, so they hold whatever the count.
    workers: int = bounded(0, least=0, most=1024)


@dataclass
class SmtpSettings:
    """SMTP listeners (smtp, submission, submissions) and `mailcove sendmail`."""

    # Largest message accepted (announced in EHLO SIZE); larger gets 552 5.3.4.
    max_message_bytes: int = bounded(64 * 1024 * 1024, least=1)
    # Recipients per transaction; more get 452 4.5.3 (RFC 5321 4.5.3.1.8 asks for at least 100).
    max_recipients: int = bounded(1000, least=1)
    # Command line length including CRLF (RFC 5321 4.5.3.1.4); longer gets 500 5.5.2. MAIL/RCPT
    # lines get 1000 more for DSN/SIZE parameters (RFC 3461 section 5), AUTH lines 12288 (RFC 4954).
    max_line_length: int = bounded(512, least=512)
    # Deadlines, not per-read timeouts: a command must be complete within command_timeout seconds
    # of the previous reply (RFC 5321 4.5.3.2), however it trickles in. Message data (DATA, each
    # BDAT chunk) gets data_timeout seconds plus one second per min_data_rate bytes received, and
    # ends after data_timeout seconds without any byte (Postfix's smtpd_per_request_deadline and
    # smtpd_min_data_rate): an honest 50 MB upload at 500 bytes/s still finishes. Past either: 421.
    command_timeout: float = bounded(300.0, above=0, most=86400)
    data_timeout: float = bounded(180.0, above=0, most=86400)
    min_data_rate: int = bounded(500, least=1)
    # Protocol errors (bad commands, refused recipients) in one session before 421 and disconnect.
    max_errors: int = bounded(20, least=1)
    # Failed AUTH attempts in one session before 421 (the per-IP throttle is [auth]'s, shared).
    max_auth_failures: int = bounded(3, least=1)
    # Concurrent SMTP connections (smtp, submission, submissions together) in total and from one
    # client IP; more get 421 4.7.0. 50 per IP as Postfix's smtpd_client_connection_count_limit.
    max_connections: int = bounded(1000, least=1)
    max_connections_per_ip: int = bounded(50, least=1)
    # Sending limits per authenticated user and per unauthenticated relaying client IP, per hour.
    # Over them: 451 4.7.1. 0 = unlimited.
    send_messages_per_hour: int = bounded(1000, least=0)
    send_recipients_per_hour: int = bounded(5000, least=0)
    # More Received: headers than this is a mail loop: 554 5.4.6 (RFC 5321 6.3).
    max_received_headers: int = bounded(100, least=1)
    # Log a warning while the outbound queue holds more entries than this. 0 = never.
    queue_alarm: int = bounded(10000, least=0)
    # Unix socket where `mailcove sendmail` hands messages to the server. It must be reachable by
    # local users, so it lives outside the 0700 data dir. Unset: no local submission socket
    # (`mailcove sendmail` then needs access to the control socket).
    submit_socket: Path | None = None
    # Mode of the submit socket: 0o666 lets every local user submit (as Postfix's postdrop).
    submit_socket_mode: int = bounded(0o666, least=0, most=0o777)
    # Local users who may set any envelope sender with `sendmail -f` (Sendmail's trusted users).
    # Anyone else may too, but a sender that is not their own adds Sendmail's
    # "X-Authentication-Warning: <hostname>: <user> set sender to <addr> using -f". The server's
    # own user ([server] user) is always trusted. (What every local user may send through the
    # submit socket is limited per user by send_messages_per_hour and send_recipients_per_hour.)
    trusted_users: list[str] = field(default_factory=lambda: ["root"])


@dataclass
class Pop3Settings:
    """POP3 listeners (pop3 with STLS, pop3s)."""

    # Command line length including CRLF. RFC 2449 section 4 says 255 for commands; an AUTH PLAIN
    # initial response with a long password needs more, so the bound is generous but finite.
    max_line_length: int = bounded(8192, least=256)
    # Invalid commands (unknown, bad arguments, wrong state, too long) before -ERR and disconnect.
    max_bad_commands: int = bounded(20, least=1)
    # Failed logins in one session before disconnect (the per-IP throttle is [auth]'s, shared).
    max_auth_failures: int = bounded(3, least=1)
    # Seconds without a command before the session ends (RFC 1939 section 3: at least 600). A
    # deadline: a command must be complete within it of the previous reply, however it trickles in.
    idle_timeout: float = bounded(600.0, above=0, most=604800)
    # Seconds a client has after connecting to log in (a deadline from connect); then -ERR and close.
    login_timeout: float = bounded(60.0, above=0, most=86400)
    # Concurrent POP3 connections (pop3 and pop3s together) in total and from one client IP; more
    # get -ERR [SYS/TEMP] and are closed.
    max_connections: int = bounded(500, least=1)
    max_connections_per_ip: int = bounded(50, least=1)
    # RETR marks the message \Seen at QUIT, as Dovecot does (IMAP clients then show it as read).
    mark_seen: bool = True
    # A message with an X-UIDL header is listed with that UIDL (docs/pop3.md).
    reuse_xuidl: bool = True
    # Dovecot's pop3_deleted_flag: messages with this keyword are not in the maildrop, and DELE
    # sets it instead of removing the message (IMAP still shows it). Empty: DELE removes.
    deleted_flag: str = ""
    # Messages whose size and UIDL the server keeps in memory, over all maildrops.
    cache_messages: int = bounded(200_000, least=0)
    # Seconds the maildrop lock (a store lease, shared by every node) outlives a session that
    # stopped renewing it: a node killed mid-session frees its users' maildrops after this.
    lock_ttl: float = bounded(60.0, above=0, most=86400)


@dataclass
class ImapSettings:
    """IMAP listeners (imap with STARTTLS, imaps)."""

    # Largest message APPEND accepts, bytes; advertised as APPENDLIMIT. A bigger literal gets
    # NO [TOOBIG] before any of it is read.
    appendlimit: int = bounded(64 * 1024 * 1024, least=1)
    # Longest command line (without literals), bytes; longer ends the session with BYE.
    max_line: int = bounded(65536, least=512)
    # Consecutive invalid commands (BAD) before BYE.
    max_bad_commands: int = bounded(10, least=1)
    # Seconds without a command (IDLE included) before autologout; RFC 9051 5.4 asks for at least 30 minutes.
    # A deadline: the next command must be complete within it of the previous response, plus one
    # second per min_data_rate bytes it brings (an APPEND of a big message on a slow link).
    idle_timeout: float = bounded(1800.0, above=0, most=604800)
    min_data_rate: int = bounded(500, least=1)
    # Seconds a client has after connecting to log in (a deadline from connect, not per read).
    login_timeout: float = bounded(60.0, above=0, most=86400)
    # Concurrent IMAP connections (imap and imaps together) in total and from one client IP; more
    # get BYE. A client such as Thunderbird opens up to 5 per account, so an office behind one
    # NAT address needs room: raise the per-IP figure for a large one.
    max_connections: int = bounded(2000, least=1)
    max_connections_per_ip: int = bounded(100, least=1)
    # Mailboxes one user may have; CREATE past it gets NO [LIMIT]. Every LIST walks them all.
    max_mailboxes: int = bounded(10_000, least=1)


@dataclass
class DnsSettings:
    # Resolvers to ask instead of /etc/resolv.conf, each "HOST:PORT" (or "HOST" for port 53).
    nameservers: list[str] = field(default_factory=list)
    # Seconds for one lookup (all servers and retries) before it is a temporary failure.
    timeout: float = bounded(5.0, above=0, most=300)


@dataclass
class QueueSettings:
    """The outbound queue and its delivery by MX."""

    # Port used to reach MX hosts (RFC 5321: 25). Tests point it at another instance.
    mx_port: int = bounded(25, least=1, most=65535)
    # Minutes before the first retry after a temporary failure; each retry doubles it, up to
    # max_retry_minutes between tries.
    retry_minutes: float = bounded(5.0, above=0, most=10080)
    max_retry_minutes: float = bounded(60.0, above=0, most=10080)
    # Hours after which a message that still fails temporarily is bounced.
    give_up_hours: float = bounded(120.0, above=0, most=8760)
    # Hours after which the sender gets one delay warning (RFC 3464 action=delayed). 0 = never.
    delay_warning_hours: float = bounded(4.0, least=0, most=8760)
    # Connections at a time to one destination (MX domain, relay host or transport host); Postfix's
    # default_destination_concurrency_limit is 20 too.
    concurrency_per_destination: int = bounded(20, least=1)
    # Connections at a time in total.
    max_connections: int = bounded(100, least=1)
    # Seconds between looks at the queue for due recipients.
    poll_interval: float = bounded(1.0, above=0, most=3600)
    # Seconds a claimed recipient stays leased to this runner (longer than one delivery).
    lease_seconds: float = bounded(900.0, above=0, most=604800)
    # Seconds to connect, and to wait for each reply (RFC 5321 4.5.3.2 suggests minutes).
    connect_timeout: float = bounded(30.0, above=0, most=3600)
    reply_timeout: float = bounded(300.0, above=0, most=86400)
    # Offer STARTTLS to MX hosts that announce it (certificates are not checked: opportunistic).
    starttls: bool = True
    # The name in EHLO; empty: the server's hostname.
    helo_name: str = ""
    # Keep queued mail without delivering it (maintenance, staging, tests that look at the queue),
    # like Postfix's hold queue. `mailcove queue list` still shows it.
    hold: bool = False
    # Rewrite the envelope sender of mail from other domains (forwarded by an alias, relayed for a
    # client) with SRS, so SPF at the receiver passes; the address is in srs_domain (empty:
    # the hostname) and bounces to it are turned back into the original sender.
    srs: bool = True
    srs_domain: str = ""


@dataclass
class RelayhostSettings:
    """A smarthost: all remote mail goes to it instead of to the MX hosts."""

    # Empty: no relay host, deliver by MX.
    host: str = ""
    port: int = bounded(587, least=1, most=65535)
    username: str = ""
    # A file holding the password (first line). Needed with username.
    password_file: Path | None = None
    # "starttls" (required), "implicit" (TLS from the first byte, port 465), "may", or "none".
    tls: str = "starttls"
    # Check the relay host's certificate against the system CAs and its name.
    tls_verify: bool = True


@dataclass
class DkimSettings:
    # Selector of the RSA key; the Ed25519 key uses "<selector>-ed25519".
    selector: str = "mailcove"
    # Sign mail from local domains on the way out (when a key exists in <data_dir>/dkim/).
    sign: bool = True
    # Where keys live; default <data_dir>/dkim.
    key_dir: Path | None = None


@dataclass
class MailauthSettings:
    """Inbound SPF, DKIM and DMARC checks."""

    enabled: bool = True
    # The authserv-id in Authentication-Results; empty: the server's hostname.
    authserv_id: str = ""
    # Refuse (550 5.7.1) mail failing DMARC whose domain publishes p=reject.
    dmarc_reject: bool = True
    # File mail failing DMARC whose domain publishes p=quarantine into Junk.
    dmarc_quarantine_to_junk: bool = True
    # Seconds all DNS lookups of one message may take; past it a check gives temperror.
    timeout: float = bounded(10.0, above=0, most=300)
    # Messages larger than this are not DKIM-verified (dkim=none).
    max_dkim_bytes: int = bounded(10 * 1024 * 1024, least=0)


@dataclass
class WebSettings:
    """The http listener: client autoconfiguration (Thunderbird, Outlook, Apple) and MTA-STS."""

    # The host name clients are told to use for IMAP/POP3/SMTP; empty: `hostname`.
    public_hostname: str = ""
    # MTA-STS policy mode served at mta-sts.DOMAIN (RFC 8461): "testing", "enforce" or "none".
    mta_sts_mode: str = field(default="testing", metadata={"choices": ("testing", "enforce", "none")})
    # Seconds senders may cache the MTA-STS policy (RFC 8461 section 3.2; a week is common).
    mta_sts_max_age: int = bounded(604800, least=0, most=31557600)
    # Limits on one request: the request line plus headers, and the body (autodiscover's XML).
    max_header_bytes: int = bounded(16384, least=256)
    max_body_bytes: int = bounded(65536, least=1)
    # Seconds a client has to send a whole request (slow clients), and to send the next one on
    # a kept-alive connection.
    request_timeout: float = bounded(15.0, above=0, most=3600)
    keepalive_timeout: float = bounded(30.0, above=0, most=3600)
    # Requests served on one connection before it is closed.
    max_requests_per_connection: int = bounded(100, least=1)
    # Concurrent HTTP connections in total and from one client IP; more are closed with 503.
    max_connections: int = bounded(512, least=1)
    max_connections_per_ip: int = bounded(32, least=1)


# Where a new installation's data goes when nothing names it (`setup`, `import` writing a new
# config file): as root the systemd unit's StateDirectory; otherwise beside the config file,
# since a relative data_dir in a config file is relative to that file.
SYSTEM_DATA_DIR = "/var/lib/mailcove"
USER_DATA_DIR = "mailcove-data"


def new_installation_data_dir(is_root: bool) -> str:
    """The `data_dir` value a new config file gets."""
    return SYSTEM_DATA_DIR if is_root else USER_DATA_DIR


@dataclass
class Settings:
    hostname: str = field(default_factory=socket.getfqdn)
    data_dir: Path = Path(USER_DATA_DIR)
    listen: ListenSettings = field(default_factory=ListenSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    directory: DirectorySettings = field(default_factory=DirectorySettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    log: LogSettings = field(default_factory=LogSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    pop3: Pop3Settings = field(default_factory=Pop3Settings)
    imap: ImapSettings = field(default_factory=ImapSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    dns: DnsSettings = field(default_factory=DnsSettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    relayhost: RelayhostSettings = field(default_factory=RelayhostSettings)
    # Per-domain routes (sendmail's mailertable): "example.org" = "HOST:PORT" ("[HOST]:PORT" for IPv6).
    transport: dict[str, str] = field(default_factory=dict)
    dkim: DkimSettings = field(default_factory=DkimSettings)
    mailauth: MailauthSettings = field(default_factory=MailauthSettings)
    web: WebSettings = field(default_factory=WebSettings)
    # Where the settings came from, for messages; not a TOML key.
    source: str = field(default="<defaults>", metadata={"toml": False})

    @property
    def control_socket_path(self) -> Path:
        return self.server.control_socket or self.data_dir / "control.sock"
