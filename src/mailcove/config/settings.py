"""Every setting, its type and its default. docs/configuration.md documents each one; keep the
two in step. Sections are plain dataclasses so the loader can check types by introspection and
later issues add a section by adding a dataclass here."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

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
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19456
    argon2_parallelism: int = 1
    verify_workers: int = 2
    verify_cache_seconds: int = 300
    # Failed logins per client IP within `failure_window_seconds` before logins are throttled.
    max_failures_per_ip: int = 10
    failure_window_seconds: int = 300
    # Failed logins per account name (from any client) within the window before each login of
    # that account waits before its password is checked (0.5 s, doubling to 5 s). Never a refusal:
    # an attacker can slow a user down but not lock them out.
    failures_per_account_before_delay: int = 5


@dataclass
class DirectorySettings:
    # Where postmaster@<every local domain> goes unless a domain defines its own postmaster alias
    # (RFC 5321 section 4.5.1). Empty: only explicit postmaster aliases/users exist.
    postmaster: str = ""
    # How often (at most) the server checks whether the admin CLI changed the directory.
    reload_interval: float = 0.5
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
    system_min_uid: int = 0
    system_max_uid: int = 0
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
    handshake_timeout: float = 30.0


@dataclass
class StoreSettings:
    backend: str = "sqlite"
    dsn: str = ""
    # Deliveries are refused with 4.3.1 when the data dir's filesystem has less free space.
    min_free_bytes: int = 100 * 1024 * 1024
    # Bodies up to this size live inside the database (one fsync per group commit); larger ones
    # are written to their own blob file, fsynced before the commit that references them.
    inline_max_bytes: int = 128 * 1024
    default_quota_bytes: int = 0
    default_quota_messages: int = 0
    change_poll_ms: int = 100
    # PostgreSQL backend: connections this node keeps open to the database (the change listener
    # takes one more).
    pool_size: int = 10


@dataclass
class LogSettings:
    level: str = "info"
    file: Path | None = None


@dataclass
class ServerSettings:
    # Seconds to let sessions and deliveries in flight finish after SIGTERM.
    shutdown_timeout: float = 30.0
    # Unix socket for local submission and admin notifications; default <data_dir>/control.sock.
    control_socket: Path | None = None
    # Largest message accepted through the control socket (`mailcove deliver`, `mailcove sendmail`).
    max_message_bytes: int = 64 * 1024 * 1024
    # Most recipients one control-socket delivery may name.
    max_recipients: int = 1000
    # Started as root, `mailcove serve` binds its ports, then becomes this user (and `group`, or
    # the user's primary group; supplementary groups from /etc/group). Empty: "mailcove" if that
    # account exists, else stay root with a warning. "root": never drop (not recommended).
    user: str = ""
    group: str = ""
    # Processes serving connections (net/workers.py): 0 (the default) is one per core. The first
    # also runs SMTP, HTTP, the queue and the control socket; the others serve IMAP and POP3.
    # The connection caps, the login throttle and the bound on password checks waiting are the
    # server's, shared through files in the data dir, so they hold whatever the count.
    workers: int = 0


@dataclass
class SmtpSettings:
    """SMTP listeners (smtp, submission, submissions) and `mailcove sendmail`."""

    # Largest message accepted (announced in EHLO SIZE); larger gets 552 5.3.4.
    max_message_bytes: int = 64 * 1024 * 1024
    # Recipients per transaction; more get 452 4.5.3 (RFC 5321 4.5.3.1.8 asks for at least 100).
    max_recipients: int = 1000
    # Command line length including CRLF (RFC 5321 4.5.3.1.4); longer gets 500 5.5.2. MAIL/RCPT
    # lines get 1000 more for DSN/SIZE parameters (RFC 3461 section 5), AUTH lines 12288 (RFC 4954).
    max_line_length: int = 512
    # Deadlines, not per-read timeouts: a command must be complete within command_timeout seconds
    # of the previous reply (RFC 5321 4.5.3.2), however it trickles in. Message data (DATA, each
    # BDAT chunk) gets data_timeout seconds plus one second per min_data_rate bytes received, and
    # ends after data_timeout seconds without any byte (Postfix's smtpd_per_request_deadline and
    # smtpd_min_data_rate): an honest 50 MB upload at 500 bytes/s still finishes. Past either: 421.
    command_timeout: float = 300.0
    data_timeout: float = 180.0
    min_data_rate: int = 500
    # Protocol errors (bad commands, refused recipients) in one session before 421 and disconnect.
    max_errors: int = 20
    # Failed AUTH attempts in one session before 421 (the per-IP throttle is [auth]'s, shared).
    max_auth_failures: int = 3
    # Concurrent SMTP connections (smtp, submission, submissions together) in total and from one
    # client IP; more get 421 4.7.0. 50 per IP as Postfix's smtpd_client_connection_count_limit.
    max_connections: int = 1000
    max_connections_per_ip: int = 50
    # Sending limits per authenticated user and per unauthenticated relaying client IP, per hour.
    # Over them: 451 4.7.1. 0 = unlimited.
    send_messages_per_hour: int = 1000
    send_recipients_per_hour: int = 5000
    # More Received: headers than this is a mail loop: 554 5.4.6 (RFC 5321 6.3).
    max_received_headers: int = 100
    # Log a warning while the outbound queue holds more entries than this. 0 = never.
    queue_alarm: int = 10000
    # Unix socket where `mailcove sendmail` hands messages to the server. It must be reachable by
    # local users, so it lives outside the 0700 data dir. Unset: no local submission socket
    # (`mailcove sendmail` then needs access to the control socket).
    submit_socket: Path | None = None
    # Mode of the submit socket: 0o666 lets every local user submit (as Postfix's postdrop).
    submit_socket_mode: int = 0o666
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
    max_line_length: int = 8192
    # Invalid commands (unknown, bad arguments, wrong state, too long) before -ERR and disconnect.
    max_bad_commands: int = 20
    # Failed logins in one session before disconnect (the per-IP throttle is [auth]'s, shared).
    max_auth_failures: int = 3
    # Seconds without a command before the session ends (RFC 1939 section 3: at least 600). A
    # deadline: a command must be complete within it of the previous reply, however it trickles in.
    idle_timeout: float = 600.0
    # Seconds a client has after connecting to log in (a deadline from connect); then -ERR and close.
    login_timeout: float = 60.0
    # Concurrent POP3 connections (pop3 and pop3s together) in total and from one client IP; more
    # get -ERR [SYS/TEMP] and are closed.
    max_connections: int = 500
    max_connections_per_ip: int = 50
    # RETR marks the message \Seen at QUIT, as Dovecot does (IMAP clients then show it as read).
    mark_seen: bool = True
    # Imported mail keeps its old server's UIDL from an X-UIDL header (docs/pop3.md).
    reuse_xuidl: bool = True
    # Messages whose size and UIDL the server keeps in memory, over all maildrops.
    cache_messages: int = 200_000
    # Seconds the maildrop lock (a store lease, shared by every node) outlives a session that
    # stopped renewing it: a node killed mid-session frees its users' maildrops after this.
    lock_ttl: float = 60.0


@dataclass
class ImapSettings:
    """IMAP listeners (imap with STARTTLS, imaps)."""

    # Largest message APPEND accepts, bytes; advertised as APPENDLIMIT. A bigger literal gets
    # NO [TOOBIG] before any of it is read.
    appendlimit: int = 64 * 1024 * 1024
    # Longest command line (without literals), bytes; longer ends the session with BYE.
    max_line: int = 65536
    # Consecutive invalid commands (BAD) before BYE.
    max_bad_commands: int = 10
    # Seconds without a command (IDLE included) before autologout; RFC 9051 5.4 asks for at least 30 minutes.
    # A deadline: the next command must be complete within it of the previous response, plus one
    # second per min_data_rate bytes it brings (an APPEND of a big message on a slow link).
    idle_timeout: float = 1800.0
    min_data_rate: int = 500
    # Seconds a client has after connecting to log in (a deadline from connect, not per read).
    login_timeout: float = 60.0
    # Concurrent IMAP connections (imap and imaps together) in total and from one client IP; more
    # get BYE. A client such as Thunderbird opens up to 5 per account, so an office behind one
    # NAT address needs room: raise the per-IP figure for a large one.
    max_connections: int = 2000
    max_connections_per_ip: int = 100
    # Mailboxes one user may have; CREATE past it gets NO [LIMIT]. Every LIST walks them all.
    max_mailboxes: int = 10_000


@dataclass
class DnsSettings:
    # Resolvers to ask instead of /etc/resolv.conf, each "HOST:PORT" (or "HOST" for port 53).
    nameservers: list[str] = field(default_factory=list)
    # Seconds for one lookup (all servers and retries) before it is a temporary failure.
    timeout: float = 5.0


@dataclass
class QueueSettings:
    """The outbound queue and its delivery by MX."""

    # Port used to reach MX hosts (RFC 5321: 25). Tests point it at another instance.
    mx_port: int = 25
    # Minutes before the first retry after a temporary failure; each retry doubles it, up to
    # max_retry_minutes between tries.
    retry_minutes: float = 5.0
    max_retry_minutes: float = 60.0
    # Hours after which a message that still fails temporarily is bounced.
    give_up_hours: float = 120.0
    # Hours after which the sender gets one delay warning (RFC 3464 action=delayed). 0 = never.
    delay_warning_hours: float = 4.0
    # Connections at a time to one destination (MX domain, relay host or transport host); Postfix's
    # default_destination_concurrency_limit is 20 too.
    concurrency_per_destination: int = 20
    # Connections at a time in total.
    max_connections: int = 100
    # Seconds between looks at the queue for due recipients.
    poll_interval: float = 1.0
    # Seconds a claimed recipient stays leased to this runner (longer than one delivery).
    lease_seconds: float = 900.0
    # Seconds to connect, and to wait for each reply (RFC 5321 4.5.3.2 suggests minutes).
    connect_timeout: float = 30.0
    reply_timeout: float = 300.0
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
    port: int = 587
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
    timeout: float = 10.0
    # Messages larger than this are not DKIM-verified (dkim=none).
    max_dkim_bytes: int = 10 * 1024 * 1024


@dataclass
class WebSettings:
    """The http listener: client autoconfiguration (Thunderbird, Outlook, Apple) and MTA-STS."""

    # The host name clients are told to use for IMAP/POP3/SMTP; empty: `hostname`.
    public_hostname: str = ""
    # MTA-STS policy mode served at mta-sts.DOMAIN (RFC 8461): "testing", "enforce" or "none".
    mta_sts_mode: str = field(default="testing", metadata={"choices": ("testing", "enforce", "none")})
    # Seconds senders may cache the MTA-STS policy (RFC 8461 section 3.2; a week is common).
    mta_sts_max_age: int = 604800
    # Limits on one request: the request line plus headers, and the body (autodiscover's XML).
    max_header_bytes: int = 16384
    max_body_bytes: int = 65536
    # Seconds a client has to send a whole request (slow clients), and to send the next one on
    # a kept-alive connection.
    request_timeout: float = 15.0
    keepalive_timeout: float = 30.0
    # Requests served on one connection before it is closed.
    max_requests_per_connection: int = 100
    # Concurrent HTTP connections in total and from one client IP; more are closed with 503.
    max_connections: int = 512
    max_connections_per_ip: int = 32


@dataclass
class Settings:
    hostname: str = field(default_factory=socket.getfqdn)
    data_dir: Path = Path("mailcove-data")
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
