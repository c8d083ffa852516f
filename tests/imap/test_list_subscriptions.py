"""Mailbox names that cannot exist, subscriptions across CREATE/DELETE, LSUB's "%" rule
(RFC 3501 6.3.9) and LIST-EXTENDED's SUBSCRIBED/RECURSIVEMATCH/\\NonExistent (RFC 5258)."""

from __future__ import annotations

ATOMS = "!#$&'+,-.0123456789:;<=>?@^_`|[}"


def _names(untagged, kind="LIST"):
    return {r.data["name"]: r.data for r in untagged if r.kind == kind}


def test_atom_char_name_is_no_and_list_ok(imap):
    c = imap.client()
    _, done = c.cmd("SELECT " + ATOMS)  # bad modified UTF-7 ("&'+,-"), yet a valid astring
    assert done.status == "NO" and done.code == "CANNOT"
    assert _names(c.ok('LIST "" ' + ATOMS + "%*")) == {}
    _, done = c.cmd("SELECT ~foo")
    assert done.status == "NO"
    c.ok("NOOP")  # the session goes on


def test_create_does_not_subscribe_and_delete_keeps_subscription(imap):
    c = imap.client()
    c.ok("CREATE Sub/a/b")
    assert _names(c.ok('LSUB "" "Sub*"'), "LSUB") == {}
    c.ok("SUBSCRIBE Sub/a/b")
    c.ok("DELETE Sub/a/b")
    # RFC 3501 6.3.6: the subscription outlives the mailbox; LIST-EXTENDED calls it \NonExistent
    got = _names(c.ok('LIST (SUBSCRIBED) "" "Sub*"'))
    assert set(got) == {b"Sub/a/b"}
    assert set(got[b"Sub/a/b"]["attributes"]) == {"\\Subscribed", "\\NonExistent"}
    assert b"Sub/a/b" not in _names(c.ok('LIST "" "Sub*"'))  # plain LIST shows only what exists
    _, done = c.cmd("DELETE Sub/a/b")
    assert done.status == "NO" and done.code == "NONEXISTENT"
    c.ok("CREATE Sub/a/b")  # the subscription applies to the new mailbox
    got = _names(c.ok('LIST "" "Sub/a/b" RETURN (SUBSCRIBED)'))
    assert "\\Subscribed" in got[b"Sub/a/b"]["attributes"]


def test_lsub_percent_returns_unsubscribed_parent_as_noselect(imap):
    c = imap.client()
    c.ok("CREATE Ls/p/q")
    c.ok("CREATE Ls/s")
    c.ok("SUBSCRIBE Ls/p/q")
    c.ok("SUBSCRIBE Ls/s")
    got = _names(c.ok('LSUB "" "Ls/%"'), "LSUB")
    assert set(got) == {b"Ls/p", b"Ls/s"}
    assert got[b"Ls/p"]["attributes"] == ["\\Noselect"] and got[b"Ls/s"]["attributes"] == []
    c.ok("UNSUBSCRIBE Ls/p/q")
    assert set(_names(c.ok('LSUB "" "Ls/%"'), "LSUB")) == {b"Ls/s"}


def test_recursivematch_childinfo_only_for_unreturned_children(imap):
    c = imap.client()
    for name in ("Rm/t7/t7", "Rm/t8/t8", "Rm/t8/t9"):
        c.ok("CREATE " + name)
        c.ok("SUBSCRIBE " + name)
    # Rm/t7's subscribed child is returned itself: no CHILDINFO line for Rm/t7
    got = _names(c.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" "Rm*t7"'))
    assert set(got) == {b"Rm/t7/t7"}
    # Rm/t8/t9 is not returned by the pattern, so Rm/t8 stands for it with CHILDINFO
    untagged = c.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" "Rm*t8"')
    got = _names(untagged)
    assert set(got) == {b"Rm/t8", b"Rm/t8/t8"}
    assert "\\Subscribed" not in got[b"Rm/t8"]["attributes"]
    assert got[b"Rm/t8"]["extended"] == [b"CHILDINFO", [b"SUBSCRIBED"]]
    assert "extended" not in got[b"Rm/t8/t8"] or not got[b"Rm/t8/t8"]["extended"]
    got = _names(c.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" ("Rm/t8" "Rm/t8/t8" "Rm/t8/t9")'))
    assert set(got) == {b"Rm/t8/t8", b"Rm/t8/t9"}


def test_rename_onto_a_name_only_a_subscription_holds(imap):
    c = imap.client()
    c.ok("CREATE Rn")
    c.ok("SUBSCRIBE Rn")
    c.ok("DELETE Rn")
    _, done = c.cmd("RENAME Nowhere Rn")  # fails: the subscription must survive it
    assert done.status == "NO"
    got = _names(c.ok('LIST (SUBSCRIBED) "" "Rn"'))
    assert set(got[b"Rn"]["attributes"]) == {"\\Subscribed", "\\NonExistent"}
    c.ok("CREATE Other")
    c.ok("RENAME Other Rn")  # the placeholder is no mailbox: no ALREADYEXISTS
    got = _names(c.ok('LIST "" "Rn" RETURN (SUBSCRIBED)'))
    assert "\\Subscribed" in got[b"Rn"]["attributes"] and "\\NonExistent" not in got[b"Rn"]["attributes"]
    c.ok("SELECT Rn")


def test_subscription_placeholders_are_not_inferiors(imap):
    c = imap.client()
    c.ok("CREATE Top/kid")
    c.ok("SUBSCRIBE Top/kid")
    c.ok("DELETE Top/kid")  # Top/kid is now only a subscription
    c.ok("DELETE Top")  # Top has no inferior that exists: it goes away completely
    assert _names(c.ok('LIST "" "Top*"')) == {}
    got = _names(c.ok('LIST (SUBSCRIBED) "" "Top*"'))
    assert set(got) == {b"Top/kid"} and "\\NonExistent" in got[b"Top/kid"]["attributes"]
    _, done = c.cmd("DELETE Top")
    assert done.status == "NO" and done.code == "NONEXISTENT"
    # the same for RENAME onto a name below which only subscriptions are
    c.ok("SUBSCRIBE Dst")
    c.ok("SUBSCRIBE Dst/x")
    c.ok("CREATE Src")
    c.ok("RENAME Src Dst")
    got = _names(c.ok('LIST "" "Dst*" RETURN (SUBSCRIBED)'))
    assert set(got) == {b"Dst"} and "\\Subscribed" in got[b"Dst"]["attributes"]
    assert "\\Noselect" not in got[b"Dst"]["attributes"]
    got = _names(c.ok('LIST (SUBSCRIBED) "" "Dst/*"'))
    assert set(got[b"Dst/x"]["attributes"]) == {"\\Subscribed", "\\NonExistent"}
