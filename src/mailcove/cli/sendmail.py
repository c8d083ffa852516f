"""`mailcove sendmail` (and the `mailcove-sendmail` script): the /usr/sbin/sendmail interface.

    mailcove sendmail [-t] [-i|-oi] [-f sender] [-F "Full Name"] [recipient ...] < message

Any local user may run it: the message goes to the running server over the submit socket
(`[smtp] submit_socket`), which learns the caller's Unix user from the kernel. Without a
configured socket, a user who can open the data dir (root, the server's user) sends the same
SUBMIT request over the control socket, or, when no server runs, runs it in this process
straight into the store (delivery/local.py). Any user may set the envelope sender with -f; one
not in `[smtp] trusted_users` who names an address not their own gets Sendmail's
`X-Authentication-Warning:` header in the message, and each user's submissions count against the
hourly sending limits (exit 75 past them). Options other MTAs' callers pass and that mean nothing here (-oem, -odi,
-v, -U, -B 8BITMIME, -N ...) are accepted and ignored, as Postfix does. Exit codes follow
sysexits.h: 0 accepted, 64 usage, 65 message refused, 67 unknown user, 69 no server, 75 try
again later."""

from __future__ import annotations

import email.utils
import getpass
import os
import pwd
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import click

from mailcove.message.addresses import parse_address_list
from mailcove.message.headers import parse_header_block, unfold
from mailcove.message.newlines import CrlfNormalizer

EX_OK, EX_USAGE, EX_DATAERR, EX_NOUSER, EX_UNAVAILABLE, EX_TEMPFAIL = 0, 64, 65, 67, 69, 75
# Options that take an argument (sendmail(8)); their values are skipped when ignored.
_WITH_ARG = frozenset("BCLNOVXhpRrfF")


@dataclass
class SendmailArgs:
    read_headers: bool = False  # -t
    dot_ends: bool = True  # cleared by -i / -oi
    sender: str | None = None  # -f / -r
    full_name: str | None = None  # -F
    recipients: list[str] = field(default_factory=list)
    mode: str = "m"  # -bm deliver, -bp list the queue


class UsageError(Exception):
    pass


def parse_args(argv: Sequence[str]) -> SendmailArgs:
    a = SendmailArgs()
    i = 0
    args = list(argv)
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            a.recipients += args[i:]
            break
        if not arg.startswith("-") or arg == "-":
            a.recipients.append(arg)
            continue
        opt, val = arg[1:2], arg[2:]
        if opt in _WITH_ARG and not val and opt not in "p":
            if i >= len(args):
                raise UsageError(f"option -{opt} needs a value")
            val = args[i]
            i += 1
        if opt == "t":
            a.read_headers = True
            rest = val
            if rest == "i":  # -ti
                a.dot_ends = False
        elif opt == "i":
            a.dot_ends = False
        elif opt == "o":
            if val == "i":
                a.dot_ends = False
            # -oem, -odi, -oQ..., -oX: queue and error modes; nothing to do here.
        elif opt in ("f", "r"):
            a.sender = "" if val in ("<>", "") else val.strip("<>")
        elif opt == "F":
            a.full_name = val
        elif opt == "b":
            if val not in ("m", "p"):
                raise UsageError(f"-b{val} is not supported (only -bm and -bp)")
            a.mode = val
        elif opt in "vUqXBCLNOVhpRX":
            pass
        else:
            raise UsageError(f"unknown option {arg}")
    out: list[str] = []
    for r in a.recipients:
        out += [p.strip() for p in r.split(",") if p.strip()]
    a.recipients = out
    return a


def prepare(raw: bytes, a: SendmailArgs, user: str, hostname: str) -> tuple[bytes, list[str]]:
    """The message as it will be stored, and its recipients. Bare LF becomes CRLF; without -i a
    line with a single dot ends the input; with -t, To/Cc/Bcc add recipients and Bcc is removed;
    missing From:, Date: and Message-ID: are added, as sendmail does."""
    if a.dot_ends:
        for marker in (b"\n.\n", b"\n.\r\n"):
            pos = raw.find(marker)
            if pos >= 0:
                raw = raw[: pos + 1]
        if raw.startswith((b".\n", b".\r\n")):
            raw = b""
    n = CrlfNormalizer()
    data = n.feed(raw) + n.finish()
    fields, body_start = parse_header_block(data, 0, len(data))
    header_end = body_start
    rcpts = list(a.recipients)
    names = {name.lower() for name, _ in fields}
    if a.read_headers:
        for name, value in fields:
            if name.lower() in (b"to", b"cc", b"bcc"):
                text = unfold(value).decode("utf-8", "replace")
                for x in parse_address_list(text):
                    if not x.mailbox or x.host is None or x.host == "SYNTAX_ERROR":
                        continue  # group markers, broken addresses
                    if x.host == "MISSING_DOMAIN":
                        rcpts.append(x.mailbox)  # a bare local name ("To: root"), qualified by the server
                    else:
                        rcpts.append(f"{x.mailbox}@{x.host}")
        if b"bcc" in names:
            data = _drop_field(data, header_end, b"bcc")
    add = []
    if b"from" not in names:
        sender = a.sender if a.sender else f"{user}@{hostname}"
        add.append(f"From: {email.utils.formataddr((a.full_name or '', sender))}\r\n")
    if b"date" not in names:
        add.append(f"Date: {email.utils.formatdate(time.time(), localtime=True)}\r\n")
    if b"message-id" not in names:
        add.append(f"Message-ID: {email.utils.make_msgid(domain=hostname)}\r\n")
    if add:
        if not fields and not data.startswith(b"\r\n"):
            add.append("\r\n")  # no header block at all: the text is the body
        data = "".join(add).encode("utf-8") + data
    return data, list(dict.fromkeys(rcpts))


def _drop_field(data: bytes, header_end: int, name: bytes) -> bytes:
    out = []
    keep = True
    head = data[:header_end]
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)
            continue
        keep = line.split(b":", 1)[0].strip().lower() != name
        if keep:
            out.append(line)
    return b"".join(out) + data[header_end:]


def _login_name() -> str:
    """The caller's Unix name from its uid, as the server learns it (SO_PEERCRED); $LOGNAME and
    $USER, which getpass reads first, are the caller's to set."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return getpass.getuser()


def run(argv: Sequence[str], settings_loader: object) -> int:
    try:
        a = parse_args(argv)
    except UsageError as exc:
        click.echo(f"mailcove: {exc}", err=True)
        return EX_USAGE
    settings = settings_loader()  # type: ignore[operator]
    if a.mode == "p":
        from mailcove.cli.mailq import print_queue

        return print_queue(settings, as_json=False)
    limit = settings.smtp.max_message_bytes
    raw = sys.stdin.buffer.read(limit + 1)
    if len(raw) > limit:
        click.echo(f"mailcove: message larger than {limit} bytes ([smtp] max_message_bytes)", err=True)
        return EX_DATAERR
    user = _login_name()
    data, rcpts = prepare(raw, a, user, settings.hostname)
    if not rcpts:
        click.echo("mailcove: no recipients (give them as arguments, or -t to read To:/Cc:/Bcc:)", err=True)
        return EX_USAGE
    from mailcove.delivery.local import run_locally
    from mailcove.net.control import ControlClient, ControlUnavailable, Request

    path = settings.smtp.submit_socket
    try:
        if path is not None:
            try:
                with ControlClient(path) as client:
                    outcome = client.submit(data, a.sender, rcpts)
            except ControlUnavailable as exc:
                click.echo(f"mailcove: no mailcove server is running ({exc}); try again later", err=True)
                return EX_TEMPFAIL
        else:
            if not os.access(settings.data_dir, os.R_OK | os.W_OK | os.X_OK):
                click.echo(f"mailcove: [smtp] submit_socket is not configured and {settings.data_dir} is not "
                           "accessible to this user", err=True)
                return EX_UNAVAILABLE
            try:
                with ControlClient(settings.control_socket_path) as client:
                    outcome = client.submit(data, a.sender, rcpts)
            except ControlUnavailable:
                outcome = run_locally(settings, Request.submit(len(data), a.sender, rcpts), data)
    except OSError as exc:
        click.echo(f"mailcove: {exc}", err=True)
        return EX_TEMPFAIL
    if outcome.ok:
        return EX_OK
    click.echo(f"mailcove: {outcome.code} {outcome.enhanced} {outcome.text}", err=True)
    if outcome.enhanced == "5.1.1":
        return EX_NOUSER
    return EX_TEMPFAIL if 400 <= outcome.code < 500 else EX_DATAERR


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False,
                                 "help_option_names": ["--help"]})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def sendmail(obj: object, args: tuple[str, ...]) -> None:
    """Send a message read from stdin, like /usr/sbin/sendmail.

    \b
    -t            recipients from To:, Cc:, Bcc: (Bcc: is removed)
    -i, -oi       a line with a single dot does not end the message
    -f ADDRESS    envelope sender (default USER@hostname; another's gets an
                  X-Authentication-Warning unless USER is in [smtp] trusted_users)
    -F NAME       full name for an added From: header
    -bp           list the queue (as mailq)
    """
    sys.exit(run(args, lambda: obj.settings))  # type: ignore[attr-defined]


def main() -> None:
    """The `mailcove-sendmail` script: sendmail's own argument syntax, config from
    $MAILCOVE_CONFIG or /etc/mailcove.toml."""
    from mailcove.config import ConfigError, load_settings

    def load() -> object:
        path = os.environ.get("MAILCOVE_CONFIG")
        if path is None and os.path.exists("/etc/mailcove.toml"):
            path = "/etc/mailcove.toml"
        try:
            return load_settings(path)
        except ConfigError as exc:
            click.echo(f"mailcove: config error: {exc}", err=True)
            sys.exit(EX_TEMPFAIL)

    name = os.path.basename(sys.argv[0])
    if name in ("mailq", "mailcove-mailq"):
        from mailcove.cli.mailq import print_queue

        sys.exit(print_queue(load(), as_json=False))  # type: ignore[arg-type]
    sys.exit(run(sys.argv[1:], load))


def register(root: click.Group) -> None:
    root.add_command(sendmail)
