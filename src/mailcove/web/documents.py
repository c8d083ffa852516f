"""The client set-up documents, built from a list of Endpoints:

- Thunderbird autoconfig (clientConfig v1.1, https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat);
- Outlook's POX autodiscover (the "outlook" response schema 2006a, [MS-OXDSCLI]);
- an Apple configuration profile (com.apple.mail.managed payload), unsigned.

Documents are built with ElementTree / plistlib, never by pasting strings, so an address from a
request cannot inject markup. The request of autodiscover is parsed with defusedxml (no entity
expansion, no external entities, no DTD retrieval) after the HTTP layer bounded its size."""

from __future__ import annotations

import plistlib
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from mailcove.web.clientconfig import Endpoint

EMAIL_PLACEHOLDER = "%EMAILADDRESS%"
AUTODISCOVER_RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_SCHEMA = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
MOBILECONFIG_TYPE = "application/x-apple-aspen-config"


def _xml_bytes(root: ET.Element) -> bytes:
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


# --- Thunderbird -------------------------------------------------------------------------------

def thunderbird(domain: str, email: str | None, endpoints: Sequence[Endpoint]) -> bytes:
    """clientConfig v1.1. Without an address (Thunderbird for Android asks without one) the
    username is the %EMAILADDRESS% placeholder the client fills in itself."""
    username = email or EMAIL_PLACEHOLDER
    root = ET.Element("clientConfig", version="1.1")
    provider = ET.SubElement(root, "emailProvider", id=domain)
    ET.SubElement(provider, "domain").text = domain
    ET.SubElement(provider, "displayName").text = f"{domain} mail"
    ET.SubElement(provider, "displayShortName").text = domain
    for ep in endpoints:
        tag = "outgoingServer" if ep.kind == "smtp" else "incomingServer"
        server = ET.SubElement(provider, tag, type=ep.kind)
        ET.SubElement(server, "hostname").text = ep.host
        ET.SubElement(server, "port").text = str(ep.port)
        ET.SubElement(server, "socketType").text = ep.socket_type
        # The password goes to the server as it is (SASL PLAIN / LOGIN); TLS protects it, and a
        # plain endpoint exists only in the admin's explicit lab mode.
        ET.SubElement(server, "authentication").text = "password-cleartext"
        ET.SubElement(server, "username").text = username
    return _xml_bytes(root)


# --- Outlook autodiscover ------------------------------------------------------------------------

class BadAutodiscoverRequest(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class AutodiscoverRequest:
    email: str
    schema: str


def parse_autodiscover(body: bytes) -> AutodiscoverRequest:
    """The EMailAddress and AcceptableResponseSchema of a POX autodiscover request, whatever the
    namespace prefixes. Raises BadAutodiscoverRequest with a reason."""
    try:
        root = SafeET.fromstring(body, forbid_dtd=True)
    except (ET.ParseError, DefusedXmlException) as exc:
        raise BadAutodiscoverRequest(f"not a valid autodiscover request: {exc}") from None
    except (ValueError, LookupError) as exc:
        # expat refuses an encoding it cannot decode (encoding="UTF-7": "multi-byte encodings
        # are not supported") with a ValueError, and an unknown one with a LookupError.
        raise BadAutodiscoverRequest(f"not a valid autodiscover request: unsupported encoding ({exc})") from None
    found: dict[str, str] = {}
    for el in root.iter():
        local = el.tag.rsplit("}", 1)[-1] if isinstance(el.tag, str) else ""
        if local in ("EMailAddress", "AcceptableResponseSchema") and local not in found:
            found[local] = (el.text or "").strip()
    if not found.get("EMailAddress"):
        raise BadAutodiscoverRequest("the request has no EMailAddress")
    return AutodiscoverRequest(found["EMailAddress"], found.get("AcceptableResponseSchema", OUTLOOK_SCHEMA))


def autodiscover(email: str, endpoints: Sequence[Endpoint]) -> bytes:
    root = ET.Element("Autodiscover", xmlns=AUTODISCOVER_RESPONSE_NS)
    response = ET.SubElement(root, "Response", xmlns=OUTLOOK_SCHEMA)
    account = ET.SubElement(response, "Account")
    ET.SubElement(account, "AccountType").text = "email"
    ET.SubElement(account, "Action").text = "settings"
    for ep in endpoints:
        proto = ET.SubElement(account, "Protocol")
        ET.SubElement(proto, "Type").text = {"imap": "IMAP", "pop3": "POP3", "smtp": "SMTP"}[ep.kind]
        ET.SubElement(proto, "Server").text = ep.host
        ET.SubElement(proto, "Port").text = str(ep.port)
        ET.SubElement(proto, "DomainRequired").text = "off"
        ET.SubElement(proto, "LoginName").text = email
        ET.SubElement(proto, "SPA").text = "off"
        # Outlook: SSL on + Encryption SSL is implicit TLS, Encryption TLS is STARTTLS.
        ET.SubElement(proto, "SSL").text = "on" if ep.uses_tls else "off"
        ET.SubElement(proto, "Encryption").text = {"SSL": "SSL", "STARTTLS": "TLS", "plain": "None"}[ep.socket_type]
        ET.SubElement(proto, "AuthRequired").text = "on"
        if ep.kind == "smtp":
            ET.SubElement(proto, "UsePOPAuth").text = "on"
            ET.SubElement(proto, "SMTPLast").text = "off"
    return _xml_bytes(root)


# --- Apple ---------------------------------------------------------------------------------------

def mobileconfig(domain: str, email: str, endpoints: Sequence[Endpoint]) -> bytes | None:
    """An unsigned configuration profile with one mail account; None when there is no incoming
    or no outgoing endpoint. UUIDs are derived from the address so that installing the profile
    again replaces the account instead of adding a second one."""
    incoming = next((e for e in endpoints if e.kind == "imap"), None) or next(
        (e for e in endpoints if e.kind == "pop3"), None)
    outgoing = next((e for e in endpoints if e.kind == "smtp"), None)
    if incoming is None or outgoing is None:
        return None
    reverse = ".".join(reversed(domain.split(".")))
    account: dict[str, object] = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{reverse}.mailcove.mail.{email}",
        "PayloadUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"mailcove:mail:{email}")).upper(),
        "PayloadDisplayName": f"{email}",
        "EmailAccountDescription": email,
        "EmailAccountName": email.split("@", 1)[0],
        "EmailAccountType": "EmailTypeIMAP" if incoming.kind == "imap" else "EmailTypePOP",
        "EmailAddress": email,
        "IncomingMailServerHostName": incoming.host,
        "IncomingMailServerPortNumber": incoming.port,
        # Apple's one flag covers implicit TLS and STARTTLS (it upgrades on the plain ports).
        "IncomingMailServerUseSSL": incoming.uses_tls,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "IncomingMailServerUsername": email,
        "OutgoingMailServerHostName": outgoing.host,
        "OutgoingMailServerPortNumber": outgoing.port,
        "OutgoingMailServerUseSSL": outgoing.uses_tls,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerUsername": email,
        "OutgoingPasswordSameAsIncomingPassword": True,
    }
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{reverse}.mailcove.{email}",
        "PayloadUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"mailcove:profile:{email}")).upper(),
        "PayloadDisplayName": f"Mail for {email}",
        "PayloadDescription": f"Sets up the mail account {email}.",
        "PayloadOrganization": domain,
        "PayloadRemovalDisallowed": False,
        "PayloadContent": [account],
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML)
