"""Content-Transfer-Encoding decoding (message/decode.py): quoted-printable per RFC 2045 6.7."""

from __future__ import annotations

import time

from mailcove.message import decode_transfer


def qp(data: bytes) -> bytes:
    return decode_transfer(data, "quoted-printable")


def test_qp_octets_and_soft_breaks():
    assert qp(b"caf=C3=A9 =3d=3D") == "café ==".encode()
    assert qp(b"foo =\r\nbar\r\n") == b"foo bar\r\n"
    assert qp(b"foo\t=\nbar\n") == b"foo\tbar\n"  # a bare LF line end is kept as it is
    assert qp(b"end=") == b"end"  # a soft break at the very end


def test_qp_transport_padding_is_removed():
    # Rule 3: trailing white space on a line is padding; rule 5: also after the "=" of a soft break.
    assert qp(b"hello  \r\nbar") == b"hello\r\nbar"
    assert qp(b"foo\t \t= \r\n=62\r\n") == b"foo\t \tb\r\n"
    assert qp(b"foo = \t\r\nbar\r\n") == b"foo bar\r\n"
    assert qp(b"last line \t") == b"last line"


def test_qp_stray_equals_stays():
    assert qp(b"a=4 b=ZZ=") == b"a=4 b=ZZ"


def test_qp_imaptest_sample_size():
    # imaptest fetch-binary-mime-qp: the decoded part is 65 octets.
    raw = (b"hello  \r\nbar=\r\n\r\nfoo\t=\r\nbar\r\nfoo\t \t= \r\n=62\r\nfoo = \t\r\nbar\r\nfoo =\r\n=62\r\n"
           b"foo  \r\nbar=\r\n\r\nfoo_bar\r\n")
    assert qp(raw) == (b"hello\r\nbar\r\nfoo\tbar\r\nfoo\t \tb\r\nfoo bar\r\nfoo b\r\nfoo\r\nbar\r\nfoo_bar\r\n")
    assert len(qp(raw)) == 65


def test_qp_long_runs_are_linear():
    start = time.monotonic()
    for data in (b" " * 300_000 + b"x", b"= " * 150_000 + b"x", (b"=" + b" " * 1000 + b"x") * 300):
        qp(data)
    assert time.monotonic() - start < 2
