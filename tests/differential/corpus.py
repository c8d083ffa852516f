"""The message corpus of the Dovecot differential test, written by code so every odd byte is on
purpose. Each entry: (name, raw bytes, INTERNALDATE for APPEND, flags for APPEND).

The messages cover what clients meet and what parsers get wrong: nested multipart/alternative with
attachments, message/rfc822 parts (with their own multiparts), broken and 8-bit headers, RFC 2047
encoded words, RFC 2231 parameters (charset, language, continuations), very long lines, no final
newline, bare LF, groups and odd addresses, missing and broken Date headers, threads by References,
In-Reply-To and subject only.

Added for what Dovecot's imaptest found (issue 12): the addresses of imaptest's search-addresses
group (bare, display names, comments inside the address, names in parentheses, several From
addresses, groups and an empty group), each with a Date header and an INTERNALDATE near midnight
in another time zone (for BEFORE/ON/SINCE and SENTBEFORE/SENTON/SENTSINCE), and quoted-printable
parts for BINARY[n] (imaptest's fetch-binary-mime-qp part, =20 before CRLF, trailing whitespace,
lowercase hex, an encoded NUL and CR LF, an empty part, a soft line break on the part's last line).
A part whose very last byte is the '=' of a soft line break (no CRLF before the boundary's) is
left out: Dovecot 2.3 fails that FETCH and drops the connection ("Invalid quoted-printable input
trailer"), so it gives no reference.
"""

from __future__ import annotations

import base64

CRLF = b"\r\n"


def _msg(headers: list[str] | list[bytes], body: bytes) -> bytes:
    lines = [h.encode() if isinstance(h, str) else h for h in headers]
    return CRLF.join(lines) + CRLF + CRLF + body


def _b64(data: bytes) -> bytes:
    enc = base64.b64encode(data)
    return CRLF.join(enc[i : i + 76] for i in range(0, len(enc), 76)) + CRLF


PDF = b"%PDF-1.4\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(255, -1, -1)) * 3


def simple() -> bytes:
    return _msg(
        [
            "From: Alice Example <alice@hamap.local>",
            "To: Bob <bob@hamap.local>",
            "Subject: Lunch on Friday",
            "Date: Mon, 02 Nov 2026 09:15:00 +0100",
            "Message-ID: <lunch-1@hamap.local>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=us-ascii",
        ],
        b"Shall we meet at noon?\r\n\r\n-- \r\nAlice\r\n",
    )


def nested_alternative() -> bytes:
    """multipart/mixed { multipart/alternative { text/plain, multipart/related { text/html, image } },
    application/pdf attachment (RFC 2231 filename), text/csv inline }"""
    return _msg(
        [
            "From: \"Report Bot\" <reports@hamap.local>",
            "To: team@hamap.local, \"Carol C.\" <carol@hamap.local>",
            "Cc: <dave@hamap.local>",
            "Subject: Quarterly report",
            "Date: Tue, 03 Nov 2026 14:00:00 +0000",
            "Message-ID: <report-q3@hamap.local>",
            "MIME-Version: 1.0",
            'Content-Type: multipart/mixed; boundary="outer-boundary"',
            "Content-Language: en",
        ],
        b"This is a multi-part message in MIME format.\r\n"
        b"--outer-boundary\r\n"
        b'Content-Type: multipart/alternative; boundary="alt-b"\r\n'
        b"\r\n"
        b"--alt-b\r\n"
        b"Content-Type: text/plain; charset=utf-8; format=flowed\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n"
        b"\r\n"
        b"Revenue is up 12 % this quarter. Caf=C3=A9 budget unchanged.=\r\n"
        b" Soft break above.\r\n"
        b"--alt-b\r\n"
        b'Content-Type: multipart/related; boundary="rel-b"; type="text/html"\r\n'
        b"\r\n"
        b"--rel-b\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n"
        b"\r\n"
        b"<html><body><p>Revenue is up. Caf\xc3\xa9.</p><img src=\"cid:chart@hamap\"></body></html>\r\n"
        b"--rel-b\r\n"
        b"Content-Type: image/png; name=\"chart.png\"\r\n"
        b"Content-ID: <chart@hamap>\r\n"
        b"Content-Description: Revenue chart\r\n"
        b"Content-Transfer-Encoding: base64\r\n"
        b"Content-Disposition: inline; filename=\"chart.png\"\r\n"
        b"\r\n" + _b64(PNG) + b"--rel-b--\r\n"
        b"\r\n"
        b"--alt-b--\r\n"
        b"\r\n"
        b"--outer-boundary\r\n"
        b"Content-Type: application/pdf; name*=utf-8''r%C3%A9sum%C3%A9.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n"
        b"Content-Disposition: attachment;\r\n"
        b" filename*0*=utf-8'fr'Rapport%20trimestriel%20;\r\n"
        b" filename*1*=%C3%A9t%C3%A9.pdf; size=2330\r\n"
        b"Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n"
        b"Content-Location: http://hamap.local/report.pdf\r\n"
        b"\r\n" + _b64(PDF) + b"--outer-boundary\r\n"
        b"Content-Type: text/csv; charset=us-ascii; header=present\r\n"
        b"Content-Disposition: inline\r\n"
        b"Content-Language: en, fr\r\n"
        b"\r\n"
        b"quarter,revenue\r\nQ3,112\r\n"
        b"--outer-boundary--\r\n"
        b"Epilogue text that nobody reads.\r\n",
    )


def forwarded_rfc822() -> bytes:
    inner = _msg(
        [
            "From: =?UTF-8?B?SsO8cmdlbiBNw7xsbGVy?= <juergen@hamap.local>",
            "To: alice@hamap.local",
            "Subject: =?ISO-8859-1?Q?Gr=FC=DFe_aus_M=FCnchen?=",
            "Date: Sun, 01 Nov 2026 18:30:00 +0100",
            "Message-ID: <inner-1@hamap.local>",
            "MIME-Version: 1.0",
            'Content-Type: multipart/alternative; boundary="inner-alt"',
        ],
        b"--inner-alt\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        b"Gr\xfc\xdfe!\r\n"
        b"--inner-alt\r\nContent-Type: text/html; charset=iso-8859-1\r\n\r\n<b>Gr&uuml;&szlig;e</b>\r\n"
        b"--inner-alt--\r\n",
    )
    return _msg(
        [
            "From: Alice Example <alice@hamap.local>",
            "To: Bob <bob@hamap.local>",
            "Subject: Fwd: =?ISO-8859-1?Q?Gr=FC=DFe_aus_M=FCnchen?=",
            "Date: Mon, 02 Nov 2026 10:00:00 +0100",
            "Message-ID: <fwd-1@hamap.local>",
            "MIME-Version: 1.0",
            'Content-Type: multipart/mixed; boundary="fwd"',
        ],
        b"--fwd\r\nContent-Type: text/plain\r\n\r\nSee below.\r\n"
        b"--fwd\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"gruss.eml\"\r\n"
        b"Content-Description: forwarded message\r\n\r\n" + inner + b"\r\n--fwd--\r\n",
    )


def rfc822_only() -> bytes:
    """A message whose top-level body is message/rfc822 (a bounce-like wrapper)."""
    inner = simple()
    return _msg(
        [
            "From: MAILER-DAEMON@hamap.local",
            "To: alice@hamap.local",
            "Subject: Returned mail",
            "Date: Wed, 04 Nov 2026 01:02:03 -0500",
            "MIME-Version: 1.0",
            "Content-Type: message/rfc822",
        ],
        inner,
    )


def broken_headers() -> bytes:
    return _msg(
        [
            b"From: Broken <broken@hamap.local",
            b"To: undisclosed-recipients:;",
            b"Cc: friends: eve@hamap.local, \"Frank F\" <frank@hamap.local>;, solo@hamap.local",
            b"Subject: caf\xc3\xa9 raw 8-bit subject and =?utf-8?q?encoded=5Fword?= mixed",
            b"Date: not a date at all",
            b"Message-ID: no-angle-brackets@hamap.local",
            b"In-Reply-To: <lunch-1@hamap.local> (a comment)",
            b"Reply-To: \"Weird, Name\" <weird@hamap.local>, <>",
            b"Sender: \"quoted local\"@hamap.local",
            b"X-Folded: first part",
            b"\tsecond part after a tab",
            b"X-Empty:",
            b"Content-Type: text/plain; charset=\"utf-8\"; format",
        ],
        b"Body with 8-bit: na\xc3\xafve \xe2\x82\xac\r\n",
    )


def encoded_words() -> bytes:
    return _msg(
        [
            "From: =?UTF-8?Q?Andr=C3=A9_Fran=C3=A7ois?= <andre@hamap.local>",
            "To: =?ISO-8859-1?Q?Ren=E9e?= <renee@hamap.local>, \"=?utf-8?b?w4lsb2RpZQ==?=\" <elodie@hamap.local>",
            "Subject: =?UTF-8?B?w4l0w6kgw6AgUGFyaXM=?= =?UTF-8?Q?_et_=C3=A0_Lyon?=",
            "Date: Thu, 05 Nov 2026 08:00:00 +0100",
            "Message-ID: <ew-1@hamap.local>",
            "In-Reply-To: <report-q3@hamap.local>",
            "References: <report-q3@hamap.local>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: base64",
        ],
        _b64("Été à Paris et à Lyon. Ça va?\r\n".encode()),
    )


def rfc2231_params() -> bytes:
    return _msg(
        [
            "From: files@hamap.local",
            "To: alice@hamap.local",
            "Subject: Re: Quarterly report",
            "Date: Thu, 05 Nov 2026 09:00:00 +0000",
            "Message-ID: <files-1@hamap.local>",
            "References: <report-q3@hamap.local> <ew-1@hamap.local>",
            "MIME-Version: 1.0",
            'Content-Type: multipart/mixed; boundary="=_b"',
        ],
        b"--=_b\r\nContent-Type: text/plain; charset*=us-ascii'en'us-ascii\r\n\r\nfiles attached\r\n"
        b"--=_b\r\n"
        b"Content-Type: application/octet-stream;\r\n"
        b" name*0=\"very long file name that goes \";\r\n"
        b" name*1=\"on and on.bin\"\r\n"
        b"Content-Disposition: attachment; filename*=iso-8859-1''%E9t%E9.bin;\r\n"
        b" creation-date=\"Wed, 12 Feb 1997 16:29:51 -0500\"\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + _b64(bytes(range(200))) + b"--=_b\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: x-unknown-encoding\r\n\r\nopaque\r\n"
        b"--=_b--\r\n",
    )


def long_lines() -> bytes:
    words = b" ".join(b"word%05d" % i for i in range(1500))
    return _msg(
        [
            "From: long@hamap.local",
            "To: alice@hamap.local",
            "Subject: " + "a very long subject " * 30,
            "Date: Fri, 06 Nov 2026 12:00:00 +0000",
            "Message-ID: <long-1@hamap.local>",
            "X-Long: " + "x" * 3000,
            "MIME-Version: 1.0",
            "Content-Type: text/plain",
        ],
        words + CRLF + b"needle-in-a-haystack " + words + CRLF,
    )


def no_final_newline() -> bytes:
    return _msg(
        [
            "From: nonl@hamap.local",
            "To: alice@hamap.local",
            "Subject: no final newline",
            "Date: Sat, 07 Nov 2026 07:07:07 +0700",
            "Message-ID: <nonl-1@hamap.local>",
        ],
        b"last line without CRLF",
    )


def bare_lf() -> bytes:
    """Appended with bare LF: both servers store and serve it with CRLF (RFC 9051 requires CRLF)."""
    return (
        b"From: unix@hamap.local\nTo: alice@hamap.local\nSubject: Re: Re: Lunch on Friday\n"
        b"Date: Sun, 08 Nov 2026 20:00:00 +0000\nMessage-ID: <lf-1@hamap.local>\n"
        b"In-Reply-To: <lunch-1@hamap.local>\n"
        b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=lf\n\n"
        b"--lf\nContent-Type: text/plain\n\nline one\nline two\n--lf\nContent-Type: text/plain; name=x.txt\n\n"
        b"attachment line\n--lf--\n"
    )


def header_only() -> bytes:
    return b"From: hdr@hamap.local\r\nSubject: headers only, no body\r\nDate: Mon, 09 Nov 2026 00:00:00 +0000\r\n"


def missing_end_boundary() -> bytes:
    return _msg(
        [
            "From: trunc@hamap.local",
            "To: alice@hamap.local",
            "Subject: [list] truncated multipart",
            "Date: Tue, 10 Nov 2026 10:10:10 +0000",
            "MIME-Version: 1.0",
            'Content-Type: multipart/mixed; boundary="never-closed"',
        ],
        b"--never-closed\r\nContent-Type: text/plain\r\n\r\nfirst\r\n--never-closed\r\n"
        b"Content-Type: text/html\r\n\r\n<p>second, cut off",
    )


def no_content_type_multipart_digest() -> bytes:
    """multipart/digest: parts without Content-Type default to message/rfc822."""
    return _msg(
        [
            "From: digest@hamap.local",
            "To: alice@hamap.local",
            "Subject: Digest, Vol 1",
            "Date: Wed, 11 Nov 2026 11:11:11 +0000",
            "MIME-Version: 1.0",
            'Content-Type: multipart/digest; boundary="dg"',
        ],
        b"--dg\r\n\r\n" + simple() + b"\r\n--dg\r\n\r\n" + no_final_newline() + b"\r\n--dg--\r\n",
    )


def thread_member(n: int, subject: str, refs: str, date: str) -> bytes:
    head = [
        f"From: t{n}@hamap.local",
        "To: list@hamap.local",
        f"Subject: {subject}",
        f"Date: {date}",
        f"Message-ID: <thread-{n}@hamap.local>",
    ]
    if refs:
        head.append(f"References: {refs}")
    return _msg(head, f"thread message {n}\r\n".encode())


def address_message(n: int, headers: list[str], date: str) -> bytes:
    """imaptest's search-addresses messages, each with a Date near midnight in some time zone."""
    return _msg([*headers, f"Subject: addresses {n}", f"Date: {date}", f"Message-ID: <addr-{n}@domain.org>"],
                f"body{n}\r\n".encode())


# (name, header lines, Date header, INTERNALDATE): the dates sit around midnight of 15/16/17 Nov
# 2026, in zones from -1200 to +1400, so the calendar day differs between the zone and UTC.
ADDRESSES: list[tuple[str, list[str], str, str]] = [
    ("addr_plain", ["From: user-from@domain.org", "To: user-to@domain.org", "Cc: user-cc@domain.org",
                    "Bcc: user-bcc@domain.org"],
     "Sun, 15 Nov 2026 23:30:00 -0500", "15-Nov-2026 23:59:59 -0500"),
    ("addr_display", ["From: RealFrom <user-from@domain.org>", "To: RealTo <user-to@domain.org>",
                      "Cc: RealCc <user-cc@domain.org>", "Bcc: RealBcc <user-bcc@domain.org>"],
     "Mon, 16 Nov 2026 00:15:00 +1300", "16-Nov-2026 00:00:00 +0100"),
    ("addr_comments", ["From: <user-from (comment)@ (comment) domain.org>", "To: <user-to@domain.org>",
                       "Cc: <user-cc@domain.org>", "Bcc: <user-bcc@domain.org>"],
     "Mon, 16 Nov 2026 00:00:00 +0000", "16-Nov-2026 00:00:00 +0000"),
    ("addr_paren_names", ["From: user-from@domain.org (RealFrom)", "To: user-to@domain.org (RealTo)",
                          "Cc: user-cc@domain.org (RealCc)", "Bcc: user-bcc@domain.org (RealBcc)"],
     "Sun, 15 Nov 2026 23:59:59 +0000", "15-Nov-2026 23:59:59 +0000"),
    ("addr_multi", ["From: user-from1@domain.org, user-from2@domain.org", "Cc: user-cc@domain.org"],
     "Mon, 16 Nov 2026 01:00:00 +0200", "16-Nov-2026 01:00:00 +0200"),
    ("addr_groups", ["From: RealFrom <user-from@domain.org>",
                     "To: groupname: groupuser1@domain.org, groupuser2@domain.org;,\r\n"
                     "  groupname2: groupuser3@domain.org;",
                     "Cc: \"Doe, John\" <John.Doe@Sub.Domain.ORG>"],
     "Mon, 16 Nov 2026 23:30:00 -1000", "17-Nov-2026 00:30:00 +1400"),
    ("addr_empty_group", ["From: RealFrom <user-from@domain.org>", "To: groupname:;"],
     "17 Nov 2026 00:00 EST", "17-Nov-2026 23:59:59 -1200"),
]


def qp_parts() -> bytes:
    """multipart/mixed with imaptest's fetch-binary-mime-qp part (a folded boundary parameter),
    then the other quoted-printable cases, an empty part and a binary one."""
    return _msg(
        [
            "From: user@domain.org",
            "To: alice@hamap.local",
            "Subject: quoted-printable parts",
            "Date: Sat, 24 Mar 2007 23:00:00 +0200",
            "Message-ID: <qp-1@domain.org>",
            "Mime-Version: 1.0",
            'Content-Type: multipart/mixed; boundary="foo\r\n bar"',
        ],
        b"Root MIME prologue\r\n\r\n"
        b"--foo bar\r\n"
        b"Content-Type: text/x-myown; charset=us-ascii\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"hello  \r\nbar=\r\n\r\nfoo\t=\r\nbar\r\nfoo\t \t= \r\n=62\r\nfoo = \t\r\nbar\r\nfoo =\r\n=62\r\n"
        b"foo  \r\nbar=\r\n\r\nfoo_bar\r\n\r\n"
        b"--foo bar\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"space kept=20\r\ntwo spaces=20=20\r\ntrailing blanks dropped \t \r\n"
        b"lowercase caf=c3=a9, mixed =C3=a9, equals =3D sign\r\n"
        b"a soft=\r\n break and a long line that goes on=\r\n and on\r\n"
        b"--foo bar\r\n"
        b"Content-Type: text/plain; charset=us-ascii\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"--foo bar\r\n"
        b"Content-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: Quoted-Printable\r\n\r\n"
        b"nul=00byte, cr=0D=0Alf, high=FF=80=\r\n\r\n"
        b"--foo bar\r\n"
        b"Content-Type: text/plain; charset=us-ascii\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"ends with a soft break=\r\n\r\n"
        b"--foo bar--\r\n"
        b"Root MIME epilogue\r\n",
    )


def qp_single() -> bytes:
    """A single-part quoted-printable body: BINARY[1] and BINARY[TEXT]-like access of part 1."""
    return _msg(
        [
            "From: user@domain.org",
            "To: alice@hamap.local",
            "Subject: single quoted-printable part",
            "Date: Sun, 25 Mar 2007 00:00:00 +0300",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=iso-8859-1",
            "Content-Transfer-Encoding: quoted-printable",
        ],
        b"Gr=FC=DFe =\r\naus M=fcnchen=20\r\n=20\r\nlast line   \r\n",
    )


def corpus() -> list[tuple[str, bytes, str, str]]:
    """(name, bytes, INTERNALDATE, flags)."""
    items = [
        ("simple", simple(), "02-Nov-2026 09:16:00 +0100", "(\\Seen)"),
        ("nested_alternative", nested_alternative(), "03-Nov-2026 14:01:00 +0000", "(\\Seen \\Flagged)"),
        ("forwarded_rfc822", forwarded_rfc822(), "02-Nov-2026 10:01:00 +0100", "()"),
        ("rfc822_only", rfc822_only(), "04-Nov-2026 06:02:03 +0000", "(\\Answered)"),
        ("broken_headers", broken_headers(), "04-Nov-2026 07:00:00 +0000", "($Junk)"),
        ("encoded_words", encoded_words(), "05-Nov-2026 07:00:01 +0000", "(\\Seen \\Draft)"),
        ("rfc2231_params", rfc2231_params(), "05-Nov-2026 09:00:05 +0000", "()"),
        ("long_lines", long_lines(), "06-Nov-2026 12:00:01 +0000", "(\\Deleted)"),
        ("no_final_newline", no_final_newline(), "07-Nov-2026 00:07:08 +0000", "()"),
        ("bare_lf", bare_lf(), "08-Nov-2026 20:00:01 +0000", "(\\Seen)"),
        ("header_only", header_only(), "09-Nov-2026 00:00:01 +0000", "()"),
        ("missing_end_boundary", missing_end_boundary(), "10-Nov-2026 10:10:11 +0000", "()"),
        ("digest", no_content_type_multipart_digest(), "11-Nov-2026 11:11:12 +0000", "(\\Flagged)"),
    ]
    threads = [
        ("Planning", "", "Thu, 12 Nov 2026 08:00:00 +0000"),
        ("Re: Planning", "<thread-1@hamap.local>", "Thu, 12 Nov 2026 09:00:00 +0000"),
        ("RE: [list] Planning", "<thread-1@hamap.local> <thread-2@hamap.local>", "Thu, 12 Nov 2026 10:00:00 +0000"),
        ("Re: Planning", "<thread-1@hamap.local> <missing@hamap.local>", "Thu, 12 Nov 2026 09:30:00 +0000"),
        ("Fwd: Planning (fwd)", "", "Fri, 13 Nov 2026 08:00:00 +0000"),
        ("Other topic", "", "Fri, 13 Nov 2026 07:00:00 +0000"),
        ("Re: Other topic", "", "Fri, 13 Nov 2026 07:30:00 +0000"),
    ]
    for i, (subject, refs, date) in enumerate(threads, start=1):
        items.append((f"thread{i}", thread_member(i, subject, refs, date), f"14-Nov-2026 00:00:{i:02d} +0000", "()"))
    for n, (name, headers, date, internal) in enumerate(ADDRESSES, start=1):
        items.append((name, address_message(n, headers, date), internal, "()"))
    items.append(("qp_parts", qp_parts(), "24-Mar-2007 23:00:00 +0200", "()"))
    items.append(("qp_single", qp_single(), "25-Mar-2007 00:00:00 +0300", "(\\Seen)"))
    return items
