#!/bin/bash
# The seed's old server as docs/import.md's reader has it: hamap.local on rocky9-3, Sendmail's
# /etc/mail (sendmail.cf with Dj/Dw, access with the Connect: relay lines, local-host-names, ...),
# /etc/aliases, Dovecot's /etc/dovecot (mail_location = mbox:~/mail:INBOX=/var/mail/%u, ssl = no,
# ...), the Unix users a and b (password It1) and their mail as Dovecot left it: /var/mail/a,
# /var/mail/b and ~a/mail, mbox with X-IMAPbase, X-UID and Status headers.
#
# tests/e2e/test_doc_blocks.py runs it as root inside a doc's private namespace, before the doc's
# blocks: it writes to the real /etc, /home, /usr and /var, so never run it on a real machine.
# The files' text is the importer tests' own (tests/importers/), written by their helpers, so the
# doc runs against the same seed those tests check line by line.
set -euo pipefail

if [ ! -d /run/doc-blocks ]; then  # made by doc_blocks.Machine inside its namespace only
    echo "seed_machine.sh: not inside a doc-blocks namespace; refusing to change this machine" >&2
    exit 1
fi

repo=$(cd "$(dirname "$0")/../.." && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

PYTHONPATH="$repo/tests:$repo/src" "$repo/.venv/bin/python" - "$stage" <<'EOF'
import sys
from pathlib import Path

from importers.test_import_config import write_etc
from importers.test_import_config_hostname import SENDMAIL_CF
from importers.test_import_mail import FOOBAR, write_seed_mbox

stage = Path(sys.argv[1])
etc = write_etc(stage)
(etc / "mail" / "sendmail.cf").write_text(SENDMAIL_CF)
spool_dir, _home = write_seed_mbox(stage)
# b has one message in the INBOX, as Dovecot numbered it (the importer tests' Foo/Bar message)
(spool_dir / "b").write_bytes(FOOBAR)
EOF

# the seed's trees replace whatever this machine's packages put there (Debian's Dovecot files)
rm -rf /etc/mail /etc/dovecot
cp -a "$stage/etc/." /etc/
cp -a "$stage/usr/." /usr/
for u in a b; do
    id -u "$u" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$u"
    echo "$u:It1" | chpasswd
done
# the spool belongs to its user (group mail, as Sendmail's local delivery leaves it); ~/mail too
mkdir -p /var/mail
for u in a b; do
    install -o "$u" -g mail -m 0660 "$stage/var/mail/$u" "/var/mail/$u"
done
cp -a "$stage/home/a/mail" /home/a/
chown -R a:a /home/a/mail
