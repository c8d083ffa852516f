"""SELECT and EXAMINE (RFC 9051 §6.3.2-3) with CONDSTORE (RFC 7162 §3.1.8) and QRESYNC (§3.2.5)
parameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mailcove.proto.imap.commands.base import Command, command
from mailcove.proto.imap.parser import ParseError, Parser
from mailcove.proto.imap.seqset import SeqSet

__all__ = ["Examine", "QresyncParams", "Select", "parse", "parse_examine"]


@dataclass(frozen=True, slots=True)
class QresyncParams:
    """``(QRESYNC (uidvalidity modseq [known-uids [(seq-match-seqs uid-match)]]))``."""

    uidvalidity: int
    modseq: int
    known_uids: SeqSet | None = None
    seq_match: tuple[SeqSet, SeqSet] | None = None


@command
class Select(Command):
    name: ClassVar[str] = "SELECT"
    mailbox: str
    condstore: bool = False
    qresync: QresyncParams | None = None

    @property
    def readonly(self) -> bool:
        return False


@command
class Examine(Select):
    name: ClassVar[str] = "EXAMINE"

    @property
    def readonly(self) -> bool:
        return True


def _params(p: Parser) -> tuple[bool, QresyncParams | None]:
    condstore = False
    qresync = None
    if not p.maybe_sp():
        return condstore, qresync
    p.open()
    while True:
        word = p.upper_atom()
        if word == "CONDSTORE":
            condstore = True
        elif word == "QRESYNC" and qresync is None:
            p.sp()
            p.open()
            validity = p.nz_number()
            p.sp()
            modseq = p.number64()
            known = None
            match = None
            if p.maybe_sp():
                if p.peek() != 0x28:
                    known = p.seqset()
                    if known.saved:
                        raise ParseError("$ is not allowed in QRESYNC")
                    p.maybe_sp()
                if p.peek() == 0x28:
                    p.open()
                    seqs = p.seqset()
                    p.sp()
                    uids = p.seqset()
                    p.close()
                    match = (seqs, uids)
            p.close()
            qresync = QresyncParams(validity, modseq, known, match)
        else:
            raise ParseError(f"Unknown SELECT parameter {word}")
        if not p.maybe_sp():
            break
    p.close()
    return condstore, qresync


def parse(p: Parser, tag: str, uid: bool) -> Select:
    p.sp()
    mailbox = p.mailbox()
    condstore, qresync = _params(p)
    p.end()
    return Select(tag=tag, mailbox=mailbox, condstore=condstore, qresync=qresync)


def parse_examine(p: Parser, tag: str, uid: bool) -> Examine:
    p.sp()
    mailbox = p.mailbox()
    condstore, qresync = _params(p)
    p.end()
    return Examine(tag=tag, mailbox=mailbox, condstore=condstore, qresync=qresync)
