"""The IMAP command table (imap/dispatch.COMMANDS) is the one place a command's handler and
states live: every command type the sans-IO parser can produce has exactly one entry."""

from __future__ import annotations

from mailcove.imap.dispatch import COMMANDS
from mailcove.proto.imap import commands
from mailcove.proto.imap.commands import Command, parse_command


def _command_types() -> set[type]:
    return {t for t in vars(commands).values() if isinstance(t, type) and issubclass(t, Command) and t is not Command}


def test_every_parsed_command_type_has_one_entry_and_no_entry_is_dead():
    assert _command_types() == set(COMMANDS)


def test_every_command_name_parses_to_a_type_in_the_table():
    samples = {
        "CAPABILITY": "", "NOOP": "", "LOGOUT": "", "STARTTLS": "", "AUTHENTICATE": " PLAIN", "LOGIN": " a b",
        "ENABLE": " CONDSTORE", "SELECT": " INBOX", "EXAMINE": " INBOX", "CREATE": " x", "DELETE": " x",
        "RENAME": " x y", "SUBSCRIBE": " x", "UNSUBSCRIBE": " x", "LIST": ' "" *', "LSUB": ' "" *',
        "NAMESPACE": "", "STATUS": " INBOX (MESSAGES)", "IDLE": "", "CHECK": "", "CLOSE": "", "UNSELECT": "",
        "EXPUNGE": "", "SEARCH": " ALL", "SORT": " (DATE) UTF-8 ALL", "THREAD": " REFERENCES UTF-8 ALL",
        "FETCH": " 1 FLAGS", "STORE": " 1 +FLAGS (x)", "COPY": " 1 x", "MOVE": " 1 x", "ID": " NIL",
        "GETQUOTA": ' ""', "GETQUOTAROOT": " INBOX", "SETQUOTA": ' "" (STORAGE 10)', "COMPRESS": " DEFLATE",
    }
    assert set(samples) == set(commands.COMMANDS)
    for name, args in samples.items():
        cmd = parse_command(f"t1 {name}{args}".encode())
        assert type(cmd) in COMMANDS, name
