"""Differential test: our scanner against the stdlib `email` parser (compat32) on generated MIME
trees. Tree shape, content types, parameters and decoded payloads must agree."""

from __future__ import annotations

import base64
import binascii
import email
import email.message
import email.utils
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailcove.message import MessageInfo, Part, decode_body, find_section, scan
from mailcove.message.headers import decode_2231
from mailcove.message.scanner import _scan

TEXT = st.text(alphabet="abcxyz ÄéΩ\r\n.=-_\t", max_size=120)
BIN = st.binary(max_size=200)
TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=8)
BOUNDARY_CHARS = "ABCxyz0123456789'()+_,-./:=? "


def _crlf(b: bytes) -> bytes:
    return b.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


@st.composite
def leaf(draw: Any, counter: list[int]) -> tuple[bytes, dict[str, Any]]:
    ctype = draw(st.sampled_from(["text/plain", "text/html", "application/octet-stream", "image/png", None]))
    cte = draw(st.sampled_from(["7bit", "base64", "quoted-printable", None]))
    if cte in ("7bit", None):
        # 7bit text must not contain a line that starts like a delimiter
        raw = _crlf(draw(TEXT).replace("-", "+").encode("utf-8"))
        body = raw
    elif cte == "base64":
        raw = draw(BIN)
        body = base64.encodebytes(raw).replace(b"\n", b"\r\n")
    else:
        raw = _crlf(draw(TEXT).encode("utf-8"))
        body = _crlf(binascii.b2a_qp(raw.replace(b"\r\n", b"\n"), istext=True)).replace(b"\r\n-", b"\r\n=2D")
        if body.startswith(b"-"):
            body = b"=2D" + body[1:]
        raw = binascii.a2b_qp(body)
    params: list[tuple[str, str]] = []
    if ctype is not None and draw(st.booleans()):
        params.append(("charset", draw(st.sampled_from(["utf-8", "iso-8859-1", "US-ASCII"]))))
    if ctype is not None and draw(st.booleans()):
        params.append(("name", draw(TOKEN)))
    headers = []
    if ctype is not None:
        ps = "".join(f';{" " if i % 2 else chr(13) + chr(10) + chr(9)}{k}="{v}"' for i, (k, v) in enumerate(params))
        headers.append(f"Content-Type: {ctype}{ps}")
    if cte is not None:
        headers.append(f"Content-Transfer-Encoding: {cte}")
    if draw(st.booleans()):
        headers.append(f"Content-Disposition: attachment; filename*=utf-8''{draw(TOKEN)}%C3%A9")
    head = "".join(h + "\r\n" for h in headers).encode()
    return head + b"\r\n" + body, {"kind": "leaf", "raw": raw}


@st.composite
def entity(draw: Any, depth: int, counter: list[int]) -> tuple[bytes, dict[str, Any]]:
    kind = draw(st.sampled_from(["leaf", "leaf", "multipart", "message"] if depth < 4 else ["leaf"]))
    if kind == "leaf":
        return draw(leaf(counter))
    counter[0] += 1
    n = counter[0]
    if kind == "message":
        inner, spec = draw(entity(depth + 1, counter))
        subject = draw(TOKEN)
        head = f"Content-Type: message/rfc822\r\n\r\nSubject: {subject}\r\nMessage-ID: <m{n}@x>\r\n".encode()
        return head + inner, {"kind": "message", "subject": subject, "inner": spec}
    boundary = draw(st.text(alphabet=BOUNDARY_CHARS, max_size=20)).rstrip() + f"=_{n}_"
    subtype = draw(st.sampled_from(["mixed", "alternative", "related"]))
    children = draw(st.lists(entity(depth + 1, counter), min_size=1, max_size=4))
    preamble = draw(st.sampled_from([b"", b"This is a MIME message.\r\n"]))
    epilogue = draw(st.sampled_from([b"", b"\r\n", b"epilogue\r\n"]))
    pad = draw(st.sampled_from([b"", b" ", b"\t "]))
    body = preamble
    for i, (c, _) in enumerate(children):
        body += (b"\r\n" if i or preamble else b"") + b"--" + boundary.encode() + pad + b"\r\n" + c
    body += b"\r\n--" + boundary.encode() + b"--" + pad + b"\r\n" + epilogue
    head = f'Content-Type: multipart/{subtype};\r\n boundary="{boundary}"\r\n\r\n'.encode()
    return head + body, {"kind": "multipart", "children": [s for _, s in children]}


def _params_without_default(p: Part) -> list[tuple[str, str]]:
    # ours keep RFC 2231 values in wire form (as IMAP serves them); the stdlib decodes them
    params = [(k[:-1], decode_2231(v)) if k.endswith("*") else (k, v) for k, v in p.params]
    if p.type == "text" and params and params[-1] == ("charset", "us-ascii"):
        params = params[:-1]
    return params


def _stdlib_params(m: email.message.Message) -> list[tuple[str, str]]:
    got = m.get_params() or []
    out = []
    for k, v in got[1:]:
        out.append((k.lower(), email.utils.collapse_rfc2231_value(v)))
    return out


def compare(data: bytes, ours: Part, theirs: email.message.Message, spec: dict[str, Any], info: MessageInfo) -> None:
    assert ours.content_type == theirs.get_content_type()
    params = _params_without_default(ours)
    assert params == _stdlib_params(theirs)
    if spec["kind"] == "multipart":
        assert theirs.is_multipart()
        sub = theirs.get_payload()
        assert isinstance(sub, list)
        assert len(ours.parts) == len(sub) == len(spec["children"])
        for o, t, s in zip(ours.parts, sub, spec["children"], strict=True):
            compare(data, o, t, s, info)
    elif spec["kind"] == "message":
        inner = theirs.get_payload()[0]
        assert ours.envelope is not None and ours.envelope.subject == spec["subject"] == inner["subject"]
        assert ours.message is not None
        compare(data, ours.message, inner, spec["inner"], info)
    else:
        assert not ours.parts and ours.message is None
        want = theirs.get_payload(decode=True)
        assert decode_body(data, ours) == want == spec["raw"]
        if ours.type == "text":
            assert ours.lines == data[ours.body_start : ours.body_end].count(b"\n")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_against_stdlib(data: st.DataObject) -> None:
    counter = [0]
    body, spec = data.draw(entity(0, counter))
    msg = b"From: Someone <a@example.org>\r\nSubject: generated\r\n" + body
    info = _scan(msg)
    theirs = email.message_from_bytes(msg)
    compare(msg, info.root, theirs, spec, info)
    assert MessageInfo.from_bytes(info.to_bytes()) == info
    assert scan(msg) == info
    # every part's sections slice back to bytes that contain its decoded content's source
    for p in info.root.walk():
        assert 0 <= p.header_start <= p.body_start <= p.body_end <= len(msg)
    assert msg[slice(*find_section(info, "HEADER"))].endswith(b"\r\n\r\n")
