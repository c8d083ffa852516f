"""SMTP replies as values, and the named replies the server uses (after aiosmtpd's catalogue).

A reply carries its basic code (RFC 5321 section 4.2), the enhanced status code (RFC 3463,
advertised as ENHANCEDSTATUSCODES, RFC 2034) and its text lines. Serialising is the only place
that knows the wire form, so every reply the server sends is well formed and multi-line replies
use "250-" continuation lines."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    enhanced: str = ""  # "" for replies that carry none (220 greeting, 221 goodbye, EHLO 250)
    text: str = ""
    lines: tuple[str, ...] = ()  # extra lines after `text` (EHLO keywords)

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 400

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    def to_bytes(self) -> bytes:
        if not self.lines and "\r" not in self.text and "\n" not in self.text:
            # The common case, one line; most replies are the named constants below.
            if self.enhanced:
                return f"{self.code} {self.enhanced} {self.text}\r\n".encode("utf-8", "replace")
            return f"{self.code} {self.text}\r\n".encode("utf-8", "replace")
        first = f"{self.enhanced} {self.text}" if self.enhanced else self.text
        texts = [first, *self.lines]
        code = str(self.code)
        out = []
        last = len(texts) - 1
        for i, t in enumerate(texts):
            # A reply line must never carry a line break: that would let text chosen by a client
            # (an echoed address) inject a reply line.
            t = t.replace("\r", " ").replace("\n", " ")
            out.append(f"{code}{' ' if i == last else '-'}{t}\r\n")
        return "".join(out).encode("utf-8", "replace")

    def __str__(self) -> str:
        return f"{self.code} {self.enhanced} {self.text}".replace("  ", " ").strip()


# --- named replies -----------------------------------------------------------------------------
OK = Reply(250, "2.0.0", "OK")
SENDER_OK = Reply(250, "2.1.0", "Sender OK")
RCPT_OK = Reply(250, "2.1.5", "Recipient OK")
RESET_OK = Reply(250, "2.0.0", "Reset OK")
NOOP_OK = Reply(250, "2.0.0", "OK")
START_DATA = Reply(354, "", "End data with <CR><LF>.<CR><LF>")
BYE = Reply(221, "2.0.0", "Bye")
READY_TLS = Reply(220, "2.0.0", "Ready to start TLS")
AUTH_OK = Reply(235, "2.7.0", "Authentication successful")
VRFY_CANNOT = Reply(252, "2.5.2", "Cannot VRFY user, but will accept message and attempt delivery")
HELP = Reply(214, "2.0.0", "See RFC 5321")

LINE_TOO_LONG = Reply(500, "5.5.2", "Line too long")
UNKNOWN_COMMAND = Reply(500, "5.5.1", "Command unrecognized")
SYNTAX_ERROR = Reply(501, "5.5.4", "Syntax error in parameters or arguments")
BAD_SEQUENCE = Reply(503, "5.5.1", "Bad sequence of commands")
NEED_HELO = Reply(503, "5.5.1", "Send HELO/EHLO first")
NESTED_MAIL = Reply(503, "5.5.1", "Sender already specified")
NEED_MAIL = Reply(503, "5.5.1", "Need MAIL command")
NEED_RCPT = Reply(503, "5.5.1", "Need RCPT command")
NO_VALID_RCPT = Reply(554, "5.5.1", "No valid recipients")
NOT_IMPLEMENTED = Reply(502, "5.5.1", "Command not implemented")
PARAM_NOT_IMPLEMENTED = Reply(555, "5.5.4", "Parameter not recognized or not implemented")
BAD_SENDER_SYNTAX = Reply(501, "5.1.7", "Bad sender address syntax")
BAD_RCPT_SYNTAX = Reply(501, "5.1.3", "Bad recipient address syntax")
NEED_SMTPUTF8 = Reply(553, "5.6.7", "Non-ASCII address needs SMTPUTF8")
TOO_BIG = Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
TOO_MANY_RCPTS = Reply(452, "4.5.3", "Too many recipients")
BDAT_AFTER_DATA = Reply(503, "5.5.1", "DATA and BDAT cannot be mixed")
BINARY_NEEDS_BDAT = Reply(503, "5.5.1", "BODY=BINARYMIME requires BDAT")
TLS_ALREADY = Reply(503, "5.5.1", "TLS already active")
AUTH_ALREADY = Reply(503, "5.5.1", "Already authenticated")
AUTH_NOT_IN_TXN = Reply(503, "5.5.1", "AUTH not allowed during a mail transaction")
AUTH_CANCELLED = Reply(501, "5.0.0", "Authentication cancelled")
AUTH_BAD_BASE64 = Reply(501, "5.5.2", "Cannot decode response")
AUTH_FAILED = Reply(535, "5.7.8", "Authentication credentials invalid")
AUTH_MECH_UNKNOWN = Reply(504, "5.5.4", "Unrecognized authentication type")
AUTH_REQUIRED = Reply(530, "5.7.0", "Authentication required")
ENCRYPTION_REQUIRED = Reply(538, "5.7.11", "Encryption required for requested authentication mechanism")
TOO_MANY_ERRORS = Reply(421, "4.7.0", "Too many errors, closing connection")
TIMEOUT = Reply(421, "4.4.2", "Timeout, closing connection")
SHUTTING_DOWN = Reply(421, "4.3.2", "Server shutting down")
LOCAL_ERROR = Reply(451, "4.3.0", "Local error in processing, try again later")
