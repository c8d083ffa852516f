"""The real Thunderbird (Debian's `thunderbird`) under a private Xvfb, driven through Marionette, for
tests/interop/test_thunderbird_real.py.

    with RealThunderbird(tmp, account) as tb:
        tb.js("return MailServices.accounts.accounts.length")

The profile is written here: prefs.js with one IMAP account and one SMTP server on loopback (plain
text, password authentication), and every update check, telemetry ping, first-run page and remote
service turned off or pointed at a dead loopback port, so the only traffic is to 127.0.0.1. The
password is not in the profile: the test gives it to Thunderbird's own login manager
(Services.logins) through Marionette before anything connects, which is where Thunderbird looks
for it (as if the user had ticked "remember password").

Xvfb or --headless: Thunderbird 153 also runs with --headless and no display at all (tried: the
3-pane window, the account and Marionette all come up), but the test runs it under Xvfb as the
issue asks, so its GTK windows are real windows as on a desktop; Xvfb costs well under a second.
Marionette's chrome context needs --remote-allow-system-access as well as --marionette.

Processes: Xvfb picks a free display itself (-displayfd); Thunderbird is started in its own process
group, and `stop()` ends that group and then Xvfb, by their ids. Every wait has a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

DEAD = "http://127.0.0.1:9/"  # nothing listens on the discard port: any remote fetch fails at once


@dataclass(frozen=True)
class Account:
    user: str
    imap_port: int
    smtp_port: int
    host: str = "127.0.0.1"
    name: str = "Tester"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prefs(account: Account, marionette_port: int) -> dict[str, Any]:
    """Everything Thunderbird needs to start on this account without a wizard or a network call."""
    a = account
    quiet: dict[str, Any] = {
        # Marionette on a port of our own
        "marionette.port": marionette_port,
        "remote.prefs.recommended": True,
        # no updates, telemetry, studies, add-on checks, remote settings, safe browsing, captive portal
        "app.update.enabled": False,
        "app.update.auto": False,
        "app.update.disabledForTesting": True,
        "app.update.checkInstallTime": False,
        "app.update.url": DEAD,
        "app.update.url.override": DEAD,
        "app.normandy.enabled": False,
        "datareporting.policy.dataSubmissionEnabled": False,
        "datareporting.healthreport.uploadEnabled": False,
        "toolkit.telemetry.enabled": False,
        "toolkit.telemetry.unified": False,
        "toolkit.telemetry.archive.enabled": False,
        "toolkit.telemetry.server": DEAD,
        "extensions.update.enabled": False,
        "extensions.update.autoUpdateDefault": False,
        "extensions.getAddons.cache.enabled": False,
        "extensions.blocklist.enabled": False,
        "extensions.systemAddon.update.enabled": False,
        "services.settings.server": DEAD,
        "browser.safebrowsing.malware.enabled": False,
        "browser.safebrowsing.phishing.enabled": False,
        "browser.safebrowsing.downloads.enabled": False,
        "browser.safebrowsing.provider.mozilla.updateURL": DEAD,
        "network.captive-portal-service.enabled": False,
        "network.connectivity-service.enabled": False,
        "network.dns.disablePrefetch": True,
        "network.prefetch-next": False,
        "network.trr.mode": 5,
        "geo.provider.network.url": DEAD,
        "browser.region.network.url": DEAD,
        "browser.region.update.enabled": False,
        # any HTTP(S) that is still attempted goes to a dead loopback proxy
        "network.proxy.type": 1,
        "network.proxy.http": "127.0.0.1",
        "network.proxy.http_port": 9,
        "network.proxy.ssl": "127.0.0.1",
        "network.proxy.ssl_port": 9,
        "network.proxy.no_proxies_on": "",
        "network.proxy.allow_hijacking_localhost": False,
        # Thunderbird's own first-run and remote things
        "mail.shell.checkDefaultClient": False,
        "mailnews.start_page.enabled": False,
        "mailnews.start_page.url": "about:blank",
        "mailnews.start_page.override_url": "about:blank",
        "mail.provider.enabled": False,
        "mail.provider.suppress_dialog_on_startup": True,
        "mail.rights.override": True,
        "mail.rights.version": 1,
        "mail.spotlight.firstRunDone": True,
        "mail.winsearch.firstRunDone": True,
        "mail.inappnotifications.enabled": False,
        "mail.inappnotifications.url": DEAD,
        "mail.cloud_files.enabled": False,
        "mailnews.auto_config_url": DEAD,
        "mailnews.mx_service_url": DEAD,
        "mail.biff.show_alert": False,
        "mail.biff.play_sound": False,
        "mail.biff.show_tray_icon": False,
        "mail.tabs.loadInBackground": True,
        "calendar.timezone.useSystemTimezone": True,
        "calendar.integration.notify": False,
        "messenger.startup.action": 0,
        "signon.rememberSignons": True,
        "browser.dom.window.dump.enabled": True,
        "devtools.console.stdout.chrome": True,
    }
    acct: dict[str, Any] = {
        "mail.accountmanager.accounts": "account1,account2",
        "mail.accountmanager.defaultaccount": "account1",
        "mail.accountmanager.localfoldersserver": "server2",
        "mail.account.account1.identities": "id1",
        "mail.account.account1.server": "server1",
        "mail.account.account2.server": "server2",
        "mail.account.lastKey": 2,
        "mail.identity.id1.fullName": a.name,
        "mail.identity.id1.useremail": a.user,
        "mail.identity.id1.valid": True,
        "mail.identity.id1.smtpServer": "smtp1",
        "mail.identity.id1.fcc": True,
        # the account's own Sent and Drafts (what the account wizard writes)
        "mail.identity.id1.fcc_folder": f"imap://{quote(a.user, safe='')}@{a.host}/Sent",
        "mail.identity.id1.fcc_folder_picker_mode": "0",
        "mail.identity.id1.draft_folder": f"imap://{quote(a.user, safe='')}@{a.host}/Drafts",
        "mail.identity.id1.draft_folder_picker_mode": "0",
        "mail.identity.id1.archive_enabled": False,
        "mail.identity.id1.compose_html": False,
        "mail.server.server1.type": "imap",
        "mail.server.server1.hostname": a.host,
        "mail.server.server1.realhostname": a.host,
        "mail.server.server1.port": a.imap_port,
        "mail.server.server1.userName": a.user,
        "mail.server.server1.realuserName": a.user,
        "mail.server.server1.name": a.user,
        "mail.server.server1.socketType": 0,  # plain TCP, no STARTTLS
        "mail.server.server1.authMethod": 3,  # cleartext password (LOGIN / AUTH PLAIN)
        "mail.server.server1.login_at_startup": False,  # nothing connects before the password is stored
        "mail.server.server1.check_new_mail": False,
        "mail.server.server1.check_time": 0,
        "mail.server.server1.use_idle": False,
        "mail.server.server1.autosync_offline_stores": False,
        "mail.server.server1.offline_download": False,
        "mail.server.server1.delete_model": 0,  # "mark it as deleted": delete and expunge are two steps
        "mail.server.server1.spamLevel": 0,
        "mail.server.server1.directory-rel": "[ProfD]ImapMail/127.0.0.1",
        "mail.server.server2.type": "none",
        "mail.server.server2.hostname": "Local Folders",
        "mail.server.server2.userName": "nobody",
        "mail.server.server2.name": "Local Folders",
        "mail.server.server2.directory-rel": "[ProfD]Mail/Local Folders",
        "mail.smtpservers": "smtp1",
        "mail.smtp.defaultserver": "smtp1",
        "mail.smtpserver.smtp1.type": "smtp",
        "mail.smtpserver.smtp1.hostname": a.host,
        "mail.smtpserver.smtp1.port": a.smtp_port,
        "mail.smtpserver.smtp1.username": a.user,
        "mail.smtpserver.smtp1.authMethod": 3,
        "mail.smtpserver.smtp1.try_ssl": 0,
        "mail.smtpserver.smtp1.description": "mailcove",
    }
    return {**quiet, **acct}


def write_profile(profile: Path, account: Account, marionette_port: int) -> None:
    profile.mkdir(parents=True, exist_ok=True)
    lines = ["// written by tests/interop/thunderbird.py"]
    for key, value in prefs(account, marionette_port).items():
        lines.append(f"user_pref({json.dumps(key)}, {json.dumps(value)});")
    (profile / "prefs.js").write_text("\n".join(lines) + "\n")


class RealThunderbird:
    """Xvfb + `thunderbird --marionette` on a fresh profile + a Marionette session in chrome context."""

    def __init__(self, base: Path, account: Account, *, thunderbird: str = "thunderbird", xvfb: str = "Xvfb",
                 start_timeout: float = 60.0) -> None:
        self.base = base
        self.account = account
        self.thunderbird = thunderbird
        self.xvfb_bin = xvfb
        self.start_timeout = start_timeout
        self.profile = base / "profile"
        self.imap_log = base / "tb-imap.log"
        self.output = base / "tb-output.txt"
        self.xvfb: subprocess.Popen[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.client: Any = None

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> RealThunderbird:
        from marionette_driver.marionette import Marionette

        deadline = time.monotonic() + self.start_timeout
        self.base.mkdir(parents=True, exist_ok=True)
        display = self._start_xvfb(deadline)
        port = free_port()
        write_profile(self.profile, self.account, port)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MOZ_", "WAYLAND"))}
        env.update({
            "DISPLAY": f":{display}",
            "HOME": str(self.base),  # nothing of the real user's (~/.thunderbird, ~/.cache) is read
            "XDG_CACHE_HOME": str(self.base / "cache"),
            "XDG_CONFIG_HOME": str(self.base / "config"),
            "MOZ_CRASHREPORTER_DISABLE": "1",
            "MOZ_DISABLE_AUTO_SAFE_MODE": "1",
            "MOZ_LOG": "IMAP:5,SMTP:5,timestamp,sync",  # the IMAP log shows what Thunderbird sent
            "MOZ_LOG_FILE": str(self.imap_log),
            "MOZ_NO_REMOTE": "1",
            "NO_AT_BRIDGE": "1",  # no accessibility bus (there is no D-Bus session)
            "DBUS_SESSION_BUS_ADDRESS": "disabled:",
        })
        with open(self.output, "ab") as out:
            self.proc = subprocess.Popen(
                [self.thunderbird, "--marionette", "--remote-allow-system-access", "--no-remote",
                 "--profile", str(self.profile)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"thunderbird exited with {self.proc.returncode}:\n{self.logs()}")
            with socket.socket() as s:
                s.settimeout(0.5)
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"Marionette did not listen within {self.start_timeout}s:\n{self.logs()}")
            time.sleep(0.2)
        self.client = Marionette(host="127.0.0.1", port=port, startup_timeout=max(5, int(deadline - time.monotonic())))
        self.client.start_session()
        self.client.set_context(self.client.CONTEXT_CHROME)
        self.client.timeout.script = 60
        # the main window is up and its folder tree is built: the account manager is loaded
        self.wait_js("return Services.wm.getMostRecentWindow('mail:3pane')?.document.readyState == 'complete' "
                     "&& MailServices.accounts.accounts.length >= 1", timeout=max(5.0, deadline - time.monotonic()))
        return self

    def _start_xvfb(self, deadline: float) -> int:
        r, w = os.pipe()
        try:
            with open(self.base / "xvfb.txt", "ab") as err:
                self.xvfb = subprocess.Popen(
                    [self.xvfb_bin, "-displayfd", str(w), "-screen", "0", "1280x1024x24", "-nolisten", "tcp",
                     "-noreset"],
                    pass_fds=(w,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                    start_new_session=True,
                )
            os.close(w)
            w = -1
            got = b""
            while not got.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([r], [], [], left)[0]:
                    raise RuntimeError("Xvfb did not report its display in time")
                chunk = os.read(r, 64)
                if not chunk:
                    raise RuntimeError(f"Xvfb exited: {(self.base / 'xvfb.txt').read_text(errors='replace')}")
                got += chunk
            return int(got)
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)

    def stop(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.delete_session(send_request=False)
            self.client = None
        for proc in (self.proc, self.xvfb):
            if proc is None or proc.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)  # its own group: Thunderbird's child processes too
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)

    def __enter__(self) -> RealThunderbird:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # --- talking to it ------------------------------------------------------------------------
    def js(self, body: str, *args: Any, timeout: float = 60.0) -> Any:
        """Run `body` (a function body; `args` are `arguments`) in the chrome context; a returned
        Promise is awaited."""
        self.client.timeout.script = timeout
        return self.client.execute_script(body, script_args=list(args), new_sandbox=False)

    def wait_js(self, body: str, *args: Any, timeout: float = 30.0, interval: float = 0.25) -> Any:
        """Poll `body` until it returns something truthy; RuntimeError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            with contextlib.suppress(Exception):
                # a short script timeout per try: a call made while the window is still loading
                # waits for it until the script timeout
                last = self.js(body, *args, timeout=min(5.0, max(1.0, deadline - time.monotonic())))
                if last:
                    return last
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout}s waiting for: {body[-300:]}\nlast: {last!r}")
            time.sleep(interval)

    def logs(self, tail: int = 6000) -> str:
        out = self.output.read_text(errors="replace")[-tail:] if self.output.exists() else ""
        return f"--- thunderbird output ---\n{out}"

    def imap_log_text(self) -> str:
        """Thunderbird's IMAP/SMTP log (MOZ_LOG), every file it wrote."""
        return "".join(p.read_text(errors="replace") for p in sorted(self.base.glob("tb-imap.log*")))
