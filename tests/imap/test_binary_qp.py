"""FETCH BINARY (RFC 3516) of a quoted-printable part: decoded per RFC 2045 6.7, so transport
padding and soft line breaks are gone, and BINARY.SIZE and partials count the decoded octets."""

from __future__ import annotations

from imap_lab import fetches

QP_MSG = (
    b"From: user@domain.org\r\nMime-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"hello  \r\nbar=\r\n\r\nfoo\t \t= \r\n=62\r\nfoo = \t\r\nbar\r\n"
    b"--b--\r\n"
)
DECODED = b"hello\r\nbar\r\nfoo\t \tb\r\nfoo bar"


def test_binary_of_quoted_printable_part(imap):
    imap.deliver(QP_MSG)
    c = imap.client(select="INBOX")
    got = fetches(c.ok("FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1] BINARY.PEEK[1]<5.6>)"))[1]
    assert got["BINARY[1]"] == DECODED
    assert got["BINARY.SIZE[1]"] == len(DECODED)
    assert got["BINARY[1]<5>"] == DECODED[5:11]
