"""Parse a message once, at delivery, into what IMAP and the store need.

- `scan(data) -> MessageInfo`: MIME tree with byte offsets, ENVELOPE, SEARCH/SORT header fields.
- `find_section(info, "1.2.MIME") -> (start, end)` for BODY[section]; `find_part` for the Part.
- `decode_body(data, part)` for BINARY; raises `UnknownTransferEncoding` ([UNKNOWN-CTE]).
- `decode_header_value(raw)`, `base_subject(decoded)`, `parse_address_list(raw)`, `parse_date(raw)`.
- `to_crlf(data)` and `CrlfNormalizer` (incremental) for APPEND and imports.
"""

from mailcove.message.addresses import parse_address_list
from mailcove.message.dates import parse_date
from mailcove.message.decode import UnknownTransferEncoding, decode_body, decode_transfer
from mailcove.message.headers import decode_header_value
from mailcove.message.model import Address, Envelope, MessageInfo, Part, raw_bytes
from mailcove.message.newlines import CrlfNormalizer, is_crlf_clean, to_crlf
from mailcove.message.scanner import MAX_DEPTH, MAX_PARTS, scan
from mailcove.message.sections import SectionNotFound, find_part, find_section
from mailcove.message.subject import base_subject, is_reply_or_forward

__all__ = [
    "MAX_DEPTH",
    "MAX_PARTS",
    "Address",
    "CrlfNormalizer",
    "Envelope",
    "MessageInfo",
    "Part",
    "SectionNotFound",
    "UnknownTransferEncoding",
    "base_subject",
    "decode_body",
    "decode_header_value",
    "decode_transfer",
    "find_part",
    "find_section",
    "is_crlf_clean",
    "is_reply_or_forward",
    "parse_address_list",
    "parse_date",
    "raw_bytes",
    "scan",
    "to_crlf",
]
