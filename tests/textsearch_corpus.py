"""A corpus for the full-text index's differential tests (tests/store/test_contract_textindex.py,
tests/imap/test_search_index.py): Korean in UTF-8 base64 and EUC-KR quoted-printable, HTML
(quoted-printable, entities, a script, character references), base64 text, attachment file names
(RFC 2231, RFC 2047), case pairs that str.casefold changes in length (ß, ς), 8-bit header bytes,
a NUL, an encapsulated message, and NEEDLES that hit each of them, miss, or are short (1-2
characters, Hangul)."""

from __future__ import annotations

import base64

from mailcove.message import scan
from mailcove.message.text import body_text, decoded_header, header_text


def _b64(text: str, charset: str = "utf-8") -> str:
    return base64.encodebytes(text.encode(charset)).decode()


def _msg(headers: str, body: str | bytes) -> bytes:
    head = headers.strip("\n").replace("\n", "\r\n").encode("utf-8", "surrogateescape")
    raw = body if isinstance(body, bytes) else body.replace("\n", "\r\n").encode("utf-8", "surrogateescape")
    return head + b"\r\n\r\n" + raw


CORPUS: list[bytes] = [
    _msg("From: Alice <alice@example.org>\nTo: bob@example.net\nSubject: Weekly report\n",
         "The Quick Brown Fox jumps over the lazy dog.\nab cd\n"),
    _msg("From: =?utf-8?b?6rmA66+87KSA?= <minjun@example.kr>\nSubject: =?utf-8?b?7ZqM7J2YIOyViOuCtA==?=\n"
         "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n",
         _b64("안녕하세요. 한국어 메일입니다.\n회의는 내일입니다. 서울에서 만나요.\n")),
    _msg("From: seoul@example.kr\nSubject: weather\nMIME-Version: 1.0\n"
         "Content-Type: text/plain; charset=euc-kr\nContent-Transfer-Encoding: quoted-printable\n",
         "".join(f"={b:02X}" for b in "서울 날씨가 좋습니다".encode("euc-kr")) + "\n"),
    _msg("From: chef@example.fr\nSubject: menu\nMIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n"
         "Content-Transfer-Encoding: quoted-printable\n",
         "<html><body><p>Caf=C3=A9 &amp; cr=C3=A8me br=C3=BBl=C3=A9e</p>\n"
         "<script>var hiddenvalue=1;</script><p>&#54620;&#44397; &lt;tag&gt;</p></body></html>\n"),
    _msg("From: reports@example.com\nSubject: Q3\nMIME-Version: 1.0\n"
         'Content-Type: multipart/mixed; boundary="outer"\n',
         "--outer\nContent-Type: multipart/alternative; boundary=inner\n\n"
         "--inner\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
         + _b64("Quarterly numbers attached. 분기 보고서를 첨부합니다.\n")
         + "--inner\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
         + _b64("<div>Quarterly <b>numbers</b> attached.</div>\n")
         + "--inner--\n"
         "--outer\nContent-Type: application/pdf\n"
         "Content-Disposition: attachment; filename*=utf-8''%EB%B3%B4%EA%B3%A0%EC%84%9C-final.pdf\n"
         "Content-Transfer-Encoding: base64\n\n" + _b64("%PDF-1.4 binary-ish") +
         "--outer\nContent-Type: application/octet-stream; name=\"=?utf-8?q?Spreadsheet_Z=C3=BCrich.xlsx?=\"\n"
         "Content-Transfer-Encoding: base64\n\n" + _b64("PK zip") + "--outer--\n"),
    _msg("From: hans@example.de\nSubject: =?iso-8859-1?q?Gr=FC=DFe_aus_der_STRASSE?=\nMIME-Version: 1.0\n"
         "Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n",
         "Viele Gr=FC=DFe von der Stra=DFe.\nMAISON \n"),
    _msg("From: greek@example.gr\nSubject: sisyphus\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n",
         "ΣΊΣΥΦΟΣ and σίσυφος and Σίσυφος.\n"),
    _msg("From: raw@example.org\nSubject: caf\udce9 8-bit header\n", b"body with a NUL \x00 inside and tail\r\n"),
    _msg("From: fwd@example.org\nSubject: Fwd: inner\nMIME-Version: 1.0\nContent-Type: message/rfc822\n",
         "From: inner@example.org\nSubject: the inner one\nContent-Type: text/plain\n\n"
         "encapsulated needle-text here\n"),
    _msg("From: long@example.org\nSubject: lorem\n",
         ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor. " * 40) + "\n"
         "unique-tail-marker\n"),
]

NEEDLES: list[str] = [
    "quick", "QUICK", "QuIcK bRoWn", "fox jumps", "x", "ab", "b", " ", "weekly", "WEEKLY REPORT",
    "alice@example.org", "subject: weekly", "한", "한국", "한국어", "회의", "회의 안내", "내일입니다", "서울",
    "날씨", "좋습니다", "만나", "café", "CAFÉ", "crème brûlée", "&amp;", "&", "amp", "hiddenvalue", "<p>",
    "&lt;tag", "<tag>", "보고", "보고서", "분기", "final.pdf", "zürich", "ZÜRICH.XLSX", "pdf-1.4", "quarterly",
    "<b>numbers", "grüße", "GRÜSSE", "strasse", "straße", "STRAßE", "maison", "σίσυφος", "ΣΊΣΥΦΟΣ", "ς",
    "sisyphus", "caf\udce9", "nul \x00 in", "tail", "inner", "needle-text", "encapsulated", "lorem ipsum",
    "unique-tail-marker", "adipiscing elit, sed do eiusmod tempor. lorem", "zzz-no-such-text", "민준",
    "=c3", "content-type", "euc-kr",
]


def exact_text(data: bytes) -> tuple[str, str]:
    """(decoded header, body text) as SEARCH compares them."""
    info = scan(data)
    return decoded_header(header_text(data[: info.root.body_start])), body_text(data, info)


def corpus_substrings() -> list[str]:
    """Every text the corpus gives SEARCH to match, for Hypothesis to cut needles from."""
    return [part for data in CORPUS for part in exact_text(data)]
