"""`mailcove setup DOMAIN`: a working mail server for one domain in one command.

What the seed's how-to spreads over a dozen files (local-host-names, access, sendmail.mc,
dovecot.conf and four conf.d files, useradd/passwd) is: the configuration file (hostname, data
dir, the autoconfig listener, and with --lab the seed's plaintext test set-up), the local domain
and the hostname as an alias of it, each user with their own password, and one relay rule per LAN.

The config file is the one every other command reads (--config or $MAILCOVE_CONFIG); keys
already in it are kept unless an option sets them (tomlkit keeps comments and order). Running it
again is harmless: existing domains and rules stay, existing users get the new password they are given."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import click
import tomlkit

from mailcove import admin
from mailcove.admin.runner import fail, run
from mailcove.cli.password_input import ask
from mailcove.config import ConfigError, load_settings
from mailcove.config.settings import new_installation_data_dir
from mailcove.directory import BadAccessRule
from mailcove.net import privileges

# A generated password: 16 random bytes (128 bits), 22 URL-safe characters any client accepts.
GENERATED_BYTES = 16


def _read_lines(password_stdin: bool, password_file: str | None) -> list[str]:
    if password_stdin:
        return sys.stdin.read().splitlines()
    try:
        with open(password_file or "", encoding="utf-8") as f:
            return f.read().splitlines()
    except OSError as exc:
        fail(f"cannot read the password file {password_file}: {exc.strerror or exc}")


def _passwords(addresses: list[str], password_stdin: bool, password_file: str | None, generate: bool,
               lab: bool) -> dict[str, str]:
    """One password per user: typed at a prompt for each, one line each from standard input or a
    file (in the order of --users), or generated. One line for several users is the seed's lab
    (every user's password It1) and is taken only with --lab."""
    if sum((password_stdin, password_file is not None, generate)) > 1:
        fail("give one of --password-stdin, --password-file and --generate-passwords", 2)
    if generate:
        return {a: secrets.token_urlsafe(GENERATED_BYTES) for a in addresses}
    if not (password_stdin or password_file):
        return {a: ask(f"Password for {a}", instead="--password-stdin, --password-file or --generate-passwords")
                for a in addresses}
    lines = [line.rstrip("\r") for line in _read_lines(password_stdin, password_file)]
    if len(lines) == 1 and len(addresses) > 1 and lab:
        lines *= len(addresses)
    if len(lines) < len(addresses):
        where = "standard input" if password_stdin else password_file
        fail(f"{where} has {len(lines)} password line(s) for {len(addresses)} users: give one line per user, in "
             "the order of --users (or --generate-passwords)")
    if not all(lines[: len(addresses)]):
        fail("the password must not be empty")
    return dict(zip(addresses, lines, strict=False))


def write_config(path: Path, *, hostname: str, data_dir: str | None, lab: bool, http: bool) -> None:
    doc = tomlkit.parse(path.read_text(encoding="utf-8")) if path.exists() else tomlkit.document()
    if not path.exists():
        doc.add(tomlkit.comment("written by `mailcove setup`; every key: docs/configuration.md"))
    doc["hostname"] = hostname
    if data_dir is not None:
        doc["data_dir"] = data_dir
    elif "data_dir" not in doc:
        doc["data_dir"] = new_installation_data_dir(os.geteuid() == 0)
    if http:
        listen = doc.setdefault("listen", tomlkit.table())
        if not listen.get("http"):
            # Thunderbird asks http://autoconfig.DOMAIN/ and http://DOMAIN/.well-known/...
            listen["http"] = ["*"]
    if lab:
        auth = doc.setdefault("auth", tomlkit.table())
        auth["allow_plaintext"] = tomlkit.item(True).comment("lab: Dovecot's disable_plaintext_auth = no")
        tls = doc.setdefault("tls", tomlkit.table())
        tls["enabled"] = tomlkit.item(False).comment("lab: Dovecot's ssl = no; delete for TLS (self-signed)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(tomlkit.dumps(doc), encoding="utf-8")
    os.replace(tmp, path)


@click.command()
@click.argument("domain")
@click.option("--hostname", metavar="NAME", help="The server's name (the MX host), also a local alias of DOMAIN. "
              "Default: mail.DOMAIN.")
@click.option("--users", "users", metavar="A,B,...", default="", help="Local parts of users to create (a,b).")
@click.option("--password-stdin", is_flag=True,
              help="Read the users' passwords from standard input, one line per user in the order of --users.")
@click.option("--password-file", type=click.Path(dir_okay=False), help="Read them from FILE, one line per user.")
@click.option("--generate-passwords", is_flag=True,
              help="Give each user a new random password, printed once. Without any of these three, setup asks for "
              "each user's password.")
@click.option("--lan", "lans", multiple=True, metavar="NETWORK",
              help="Clients allowed to relay without logging in (10.0.0.0/24, 10.0.0, 10.0.0.0/255.255.255.0). "
              "Repeatable.")
@click.option("--lab", is_flag=True, help="The seed's test set-up: no TLS, plaintext passwords (a lab only).")
@click.option("--no-http", is_flag=True, help="Do not turn on the autoconfig HTTP listener.")
@click.pass_obj
def setup(obj: object, domain: str, hostname: str | None, users: str, password_stdin: bool,
          password_file: str | None, generate_passwords: bool, lans: tuple[str, ...], lab: bool,
          no_http: bool) -> None:
    """Set up DOMAIN: write the config, add the domain, users and LAN relay rules."""
    config_path = obj.config_path or os.environ.get("MAILCOVE_CONFIG")  # type: ignore[attr-defined]
    if not config_path:
        fail("give the config file to write: mailcove --config FILE setup ... (or set MAILCOVE_CONFIG); "
             "`mailcove serve` must read the same one", 2)
    domain = domain.strip().lower().rstrip(".")
    hostname = (hostname or f"mail.{domain}").strip().lower().rstrip(".")
    names = [u.strip().lower() for u in users.split(",") if u.strip()]
    for u in names:
        if "@" in u and not u.endswith("@" + domain):
            fail(f"user {u!r} is not in {domain}", 2)
    addresses = list(dict.fromkeys(u if "@" in u else f"{u}@{domain}" for u in names))
    try:
        rules = [admin.rule_for(lan, "RELAY") for lan in lans]
    except BadAccessRule as exc:
        fail(exc.text, 2)
    passwords = _passwords(addresses, password_stdin, password_file, generate_passwords, lab) if addresses else {}
    path = Path(config_path)
    try:
        write_config(path, hostname=hostname, data_dir=obj.data_dir, lab=lab, http=not no_http)  # type: ignore[attr-defined]
    except (OSError, ValueError) as exc:
        fail(f"cannot write {path}: {exc}")
    try:
        settings = load_settings(path, data_dir=obj.data_dir)  # type: ignore[attr-defined]
    except ConfigError as exc:
        fail(f"config error: {exc}", 2)
    # root on a data dir the service user already owns (make install's tmpfiles, systemd's
    # StateDirectory): become its owner as every admin command does, or the files written here
    # stay root's and neither the server nor the next admin command can open them.
    privileges.adopt_data_dir_owner(settings, "setup")

    async def apply(ctx: admin.AdminContext) -> list[str]:
        done: list[str] = []
        have = {d.name for d in await admin.list_domains(ctx)}
        if domain not in have:
            await admin.add_domain(ctx, domain)
            done.append(f"domain {domain}")
        if hostname != domain and hostname not in have:
            await admin.add_domain(ctx, hostname, domain)
            done.append(f"domain {hostname} (alias of {domain})")
        existing = {u.address for u in await admin.list_users(ctx, domain=domain, with_usage=False)}
        for address, password in passwords.items():
            if address in existing:
                await admin.set_password(ctx, address, password)
                done.append(f"password of {address}")
            else:
                await admin.add_user(ctx, address, password)
                done.append(f"user {address}")
        for rule in rules:
            await admin.put_rule(ctx, rule)
            done.append(f"relay {rule.display.expandtabs(1)}")
        return done

    for line in run(settings, apply):
        click.echo(f"added: {line}")
    if generate_passwords:
        # shown this once only: the directory keeps nothing but the argon2id hash
        for address, password in passwords.items():
            click.echo(f"password for {address}: {password}")
    click.echo(f"config: {path.resolve()} (data in {settings.data_dir})")
    if lab:
        click.echo("LAB MODE: no TLS, plaintext passwords; for a test network only")
    click.echo("next: mailcove serve" + ("" if os.environ.get("MAILCOVE_CONFIG") else f" (with --config {path})"))


def register(root: click.Group) -> None:
    root.add_command(setup)
