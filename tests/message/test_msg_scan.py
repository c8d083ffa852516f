"""Table tests of odd inputs: offsets are checked by slicing the original bytes."""

from __future__ import annotations

import mmap
import random

import pytest

from mailcove.message import (
    MessageInfo,
    SectionNotFound,
    UnknownTransferEncoding,
    decode_body,
    find_part,
    find_section,
    raw_bytes,
    scan,
)
from mailcove.message.model import _param
from mailcove.message.scanner import MAX_DEPTH, _scan


def sl(data: bytes, r: tuple[int, int]) -> bytes:
    return data[r[0] : r[1]]


def test_simple_crlf() -> None:
    m = b"Subject: hi\r\nFrom: a@b.c\r\n\r\nline1\r\nline2\r\n"
    info = scan(m)
    r = info.root
    assert (r.type, r.subtype, r.params) == ("text", "plain", (("charset", "us-ascii"),))
    assert sl(m, (r.header_start, r.body_start)) == b"Subject: hi\r\nFrom: a@b.c\r\n\r\n"
    assert sl(m, (r.body_start, r.body_end)) == b"line1\r\nline2\r\n"
    assert r.size == 14 and r.lines == 2
    assert sl(m, find_section(info, "1")) == b"line1\r\nline2\r\n"
    assert sl(m, find_section(info, "TEXT")) == b"line1\r\nline2\r\n"
    assert sl(m, find_section(info, "")) == m
    with pytest.raises(SectionNotFound):
        find_section(info, "2")
    with pytest.raises(SectionNotFound):
        find_section(info, "1.1")


@pytest.mark.parametrize(
    ("msg", "header", "body"),
    [
        (b"Subject: x\nFrom: a@b\n\nbody\n", b"Subject: x\nFrom: a@b\n\n", b"body\n"),  # bare LF
        (b"Subject: x\r\n\r\nno trailing newline", b"Subject: x\r\n\r\n", b"no trailing newline"),
        (b"Subject: x", b"Subject: x", b""),  # header only, no newline at all
        (b"Subject: x\r\n", b"Subject: x\r\n", b""),
        (b"", b"", b""),
        (b"\r\nbody only\r\n", b"\r\n", b"body only\r\n"),
        (b"Subject: x\r\nthis line has no colon\r\nmore\r\n", b"Subject: x\r\n", b"this line has no colon\r\nmore\r\n"),
        (b"Subject: a\x00b\r\n\r\nnul \x00 in body", b"Subject: a\x00b\r\n\r\n", b"nul \x00 in body"),
        (b"Subject: caf\xe9\r\n\r\n\xff\xfe", b"Subject: caf\xe9\r\n\r\n", b"\xff\xfe"),
        (b"Subject: folded\r\n  over\r\n\tlines\r\n\r\nb", b"Subject: folded\r\n  over\r\n\tlines\r\n\r\n", b"b"),
        (b" leading continuation\r\nSubject: x\r\n\r\nb", b" leading continuation\r\nSubject: x\r\n\r\n", b"b"),
        (b"X-Long: " + b"v" * 200_000 + b"\r\n\r\nb", b"X-Long: " + b"v" * 200_000 + b"\r\n\r\n", b"b"),
    ],
)
def test_odd_single_part(msg: bytes, header: bytes, body: bytes) -> None:
    info = _scan(msg)
    assert sl(msg, find_section(info, "HEADER")) == header
    assert sl(msg, find_section(info, "TEXT")) == body
    assert sl(msg, find_section(info, "1")) == body
    assert info.size == len(msg)
    assert info.root.lines == body.count(b"\n")


def test_8bit_header_survives_and_round_trips() -> None:
    m = b"Subject: caf\xe9 \xc3\xa9t\xc3\xa9\r\nFrom: J\xfcrgen <j@example.org>\r\n\r\n"
    info = scan(m)
    assert raw_bytes(info.envelope.subject or "") == b"caf\xe9 \xc3\xa9t\xc3\xa9"
    assert raw_bytes(info.envelope.from_[0].name or "") == b"J\xfcrgen"
    back = MessageInfo.from_bytes(info.to_bytes())
    assert back == info
    assert raw_bytes(back.envelope.subject or "") == b"caf\xe9 \xc3\xa9t\xc3\xa9"


MULTI = (
    b"From: a@b.c\r\n"
    b"Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
    b"\r\n"
    b"preamble\r\n"
    b"--outer  \t\r\n"  # trailing whitespace after the boundary
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"caf=C3=A9\r\n"
    b"--outer\r\n"
    b"Content-Type: multipart/alternative; boundary=inner\r\n"
    b"\r\n"
    b"--inner\r\n"
    b"\r\n"
    b"no headers here\r\n"
    b"--inner\r\n"
    b"Content-Type: text/html\r\n"
    b"\r\n"
    b"<p>x</p>\r\n"
    b"--inner--\r\n"
    b"inner epilogue\r\n"
    b"--outer\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"Content-Description: forwarded\r\n"
    b"\r\n"
    b"Subject: inner message\r\n"
    b"From: \"Inner, Person\" <in@ner.org>\r\n"
    b"Content-Type: multipart/mixed; boundary=deep\r\n"
    b"\r\n"
    b"--deep\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"Content-Disposition: attachment; filename*0*=utf-8''%E2%9C%93; filename*1=\".bin\"\r\n"
    b"\r\n"
    b"AAEC\r\n"
    b"--deep--\r\n"
    b"--outer--\r\n"
    b"epilogue\r\n"
)


def test_multipart_tree_and_sections() -> None:
    m = MULTI
    info = _scan(m)
    root = info.root
    assert root.content_type == "multipart/mixed"
    assert [p.content_type for p in root.parts] == ["text/plain", "multipart/alternative", "message/rfc822"]
    assert sl(m, find_section(info, "1")) == b"caf=C3=A9"
    assert sl(m, find_section(info, "1.MIME")).startswith(b"Content-Type: text/plain; charset=utf-8\r\n")
    assert sl(m, find_section(info, "1.MIME")).endswith(b"quoted-printable\r\n\r\n")
    assert decode_body(m, find_part(root, (1,))) == "café".encode()  # type: ignore[arg-type]
    assert sl(m, find_section(info, "2.1")) == b"no headers here"
    assert sl(m, find_section(info, "2.1.MIME")) == b"\r\n"
    assert find_part(root, (2, 1)).params == (("charset", "us-ascii"),)  # type: ignore[union-attr]
    assert sl(m, find_section(info, "2.2")) == b"<p>x</p>"
    with pytest.raises(SectionNotFound):
        find_section(info, "2.3")
    rfc = root.parts[2]
    assert rfc.description == "forwarded"
    assert rfc.envelope is not None and rfc.envelope.subject == "inner message"
    assert rfc.envelope.from_[0].name == "Inner, Person"
    assert sl(m, find_section(info, "3.HEADER")).startswith(b"Subject: inner message\r\n")
    assert sl(m, find_section(info, "3.TEXT")).startswith(b"--deep\r\n")
    assert sl(m, find_section(info, "3")) == sl(m, (rfc.body_start, rfc.body_end))
    att = find_part(root, (3, 1))
    assert att is not None and att.content_type == "application/octet-stream"
    assert att.disposition == "attachment"
    assert att.disposition_params == (("filename*", "utf-8''%E2%9C%93.bin"),)  # wire form, as Dovecot
    assert _param(att.disposition_params, "filename") == "✓.bin"
    assert sl(m, find_section(info, "3.1")) == b"AAEC"
    assert decode_body(m, att) == b"\x00\x01\x02"
    assert rfc.lines == sl(m, (rfc.body_start, rfc.body_end)).count(b"\n")
    assert info.part_count == 8  # root, 1, 2, 2.1, 2.2, 3, 3 (message), 3.1
    assert MessageInfo.from_bytes(info.to_bytes()) == info


def test_missing_close_delimiter_and_lf_only() -> None:
    m = b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\none\n--b\n\ntwo\n"
    info = _scan(m)
    assert [sl(m, (p.body_start, p.body_end)) for p in info.root.parts] == [b"one", b"two\n"]


def test_empty_parts_and_adjacent_delimiters() -> None:
    m = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n--b\r\n\r\nx\r\n--b--"
    info = _scan(m)
    parts = info.root.parts
    assert len(parts) == 2
    assert parts[0].header_start == parts[0].body_end  # empty entity
    assert sl(m, (parts[1].body_start, parts[1].body_end)) == b"x"


def test_boundary_lookalike_lines_are_content() -> None:
    m = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n --b\r\nx--b\r\n--bc\r\n--b--\r\n"
    info = _scan(m)
    assert len(info.root.parts) == 1
    assert sl(m, (info.root.parts[0].body_start, info.root.parts[0].body_end)) == b" --b\r\nx--b\r\n--bc"


def test_digest_default_is_message_rfc822() -> None:
    m = (b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: one\r\n\r\nbody\r\n"
         b"--d\r\nContent-Type: text/plain\r\n\r\ntext\r\n--d--\r\n")
    info = _scan(m)
    assert [p.content_type for p in info.root.parts] == ["message/rfc822", "text/plain"]
    assert info.root.parts[0].envelope is not None
    assert info.root.parts[0].envelope.subject == "one"
    assert sl(m, find_section(info, "1.TEXT")) == b"body"


def test_multipart_without_boundary_has_no_children() -> None:
    info = _scan(b"Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\ny\r\n")
    assert info.root.type == "multipart" and info.root.parts == ()
    with pytest.raises(SectionNotFound):
        find_section(info, "1")


def test_invalid_content_type_is_text_plain() -> None:
    info = _scan(b"Content-Type: garbage\r\n\r\nx")
    assert info.root.content_type == "text/plain"
    assert info.root.params == (("charset", "us-ascii"),)


def test_top_level_message_rfc822_numbering() -> None:
    m = b"Content-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\nbody\r\n"
    info = _scan(m)
    assert sl(m, find_section(info, "1")) == b"Subject: in\r\n\r\nbody\r\n"
    assert sl(m, find_section(info, "1.1")) == b"body\r\n"
    assert sl(m, find_section(info, "1.HEADER")) == b"Subject: in\r\n\r\n"


def test_depth_limit_makes_an_opaque_leaf() -> None:
    depth = MAX_DEPTH + 10
    head = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(depth))
    m = head + b"Content-Type: text/plain\r\n\r\nleaf\r\n"
    info = _scan(m)
    assert info.truncated
    p = info.root
    levels = 0
    while p.parts:
        p = p.parts[0]
        levels += 1
    assert levels == MAX_DEPTH
    assert p.content_type == "application/octet-stream" and p.truncated
    assert sl(m, (p.body_start, p.body_end)).endswith(b"leaf\r\n")


def test_part_count_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import mailcove.message.scanner as sc

    monkeypatch.setattr(sc, "MAX_PARTS", 5)
    m = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--b\r\n\r\nx\r\n" * 20 + b"--b--\r\n"
    info = sc._scan(m)
    assert info.truncated and info.part_count == 5


def test_unknown_cte_raises_clear_error() -> None:
    m = b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n"
    info = scan(m)
    with pytest.raises(UnknownTransferEncoding) as e:
        decode_body(m, info.root)
    assert e.value.encoding == "x-uuencode"


def test_random_garbage_never_raises() -> None:
    rnd = random.Random(1234)
    alphabet = [b"\r\n", b"\n", b"\r", b"--", b"b", b":", b" ", b"Content-Type: multipart/mixed; boundary=b",
                b"Content-Type: message/rfc822", b"\x00", b"\xff", b"=?", b"?=", b"<", b">", b'"', b"(", b"@", b","]
    for _ in range(500):
        m = b"".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 80)))
        info = _scan(m)  # the unguarded scanner: any exception fails the test
        for p in info.root.walk():
            assert 0 <= p.header_start <= p.body_start <= p.body_end <= len(m)
        assert MessageInfo.from_bytes(info.to_bytes()) == info


def test_mmap_50mb(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import time

    chunk = (b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3\r\n") * 1000
    path = tmp_path / "big.eml"
    with path.open("wb") as f:
        f.write(b"Subject: big\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\n"
                b"Content-Type: text/plain\r\n\r\nhello\r\n--zz\r\nContent-Type: application/zip\r\n"
                b"Content-Transfer-Encoding: base64\r\n\r\n")
        for _ in range(50 * 1024 * 1024 // len(chunk)):
            f.write(chunk)
        f.write(b"--zz--\r\n")
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        t = time.perf_counter()
        info = _scan(mm)
        elapsed = time.perf_counter() - t
        att = info.root.parts[1]
        assert mm[att.body_start : att.body_start + 10] == chunk[:10]
        assert mm[att.body_end - 4 : att.body_end + 8] == b"NTY3\r\n--zz--"
        assert info.size > 50_000_000
    assert info == _scan(path.read_bytes())
    assert elapsed < 3.0, elapsed
