from __future__ import annotations

from mailcove.directory import Alias, Invalid, Local, Remote, SqliteDirectory
from mailcove.directory.snapshot import MAX_ALIAS_DEPTH


async def test_users_domain_alias_and_case(seeded: SqliteDirectory) -> None:
    assert await seeded.resolve("a@hamap.local") == Local("a@hamap.local")
    assert await seeded.resolve("<A@Rocky9-3>") == Local("a@hamap.local")
    assert await seeded.resolve("a@MX1.hamap.local.") == Local("a@hamap.local")
    assert isinstance(await seeded.resolve("zz@hamap.local"), Invalid)
    assert await seeded.resolve("a@gmail.example") == Remote("a@gmail.example")
    assert isinstance(await seeded.resolve("not an address"), Invalid)
    assert await seeded.is_local_domain("ROCKY9-3")
    assert await seeded.is_local_domain("hamap.local")
    assert not await seeded.is_local_domain("sub.hamap.local")


async def test_plus_addressing(seeded: SqliteDirectory) -> None:
    assert await seeded.resolve("a+lists@hamap.local") == Local("a@hamap.local", detail="lists")
    assert await seeded.resolve("A+X@rocky9-3") == Local("a@hamap.local", detail="x")
    assert isinstance(await seeded.resolve("zz+x@hamap.local"), Invalid)
    # An explicit alias for the +address wins over stripping.
    await seeded.add_alias("a+sales@hamap.local", ["b@hamap.local"])
    assert await seeded.resolve("a+sales@hamap.local") == Alias((Local("b@hamap.local"),))


async def test_alias_fanout_local_and_remote_each_once(seeded: SqliteDirectory) -> None:
    await seeded.add_alias("team@hamap.local", ["a@hamap.local", "b@rocky9-3", "x@partner.example", "A@hamap.local"])
    await seeded.add_alias("all@hamap.local", ["team@hamap.local", "a@hamap.local", "X@partner.example"])
    r = await seeded.resolve("all@hamap.local")
    assert r == Alias((Local("a@hamap.local"), Local("b@hamap.local"), Remote("x@partner.example")))


async def test_alias_recursion_and_loops(seeded: SqliteDirectory) -> None:
    await seeded.add_alias("l1@hamap.local", ["l2@hamap.local"])
    await seeded.add_alias("l2@hamap.local", ["l1@hamap.local", "b@hamap.local"])
    assert await seeded.resolve("l1@hamap.local") == Alias((Local("b@hamap.local"),))
    await seeded.add_alias("p@hamap.local", ["q@hamap.local"])
    await seeded.add_alias("q@hamap.local", ["p@hamap.local"])
    r = await seeded.resolve("p@hamap.local")
    assert isinstance(r, Invalid) and "loop" in r.reason
    # Sendmail's "a: a, b": a user aliased to itself plus another keeps a copy.
    await seeded.add_alias("a@hamap.local", ["a@hamap.local", "b@hamap.local"])
    assert await seeded.resolve("a@hamap.local") == Alias((Local("a@hamap.local"), Local("b@hamap.local")))


async def test_alias_depth_limit(seeded: SqliteDirectory) -> None:
    n = MAX_ALIAS_DEPTH + 5
    for i in range(n):
        await seeded.add_alias(f"c{i}@hamap.local", [f"c{i + 1}@hamap.local"])
    await seeded.add_alias(f"c{n}@hamap.local", ["a@hamap.local"])
    assert isinstance(await seeded.resolve("c0@hamap.local"), Invalid)
    assert await seeded.resolve(f"c{n - 3}@hamap.local") == Alias((Local("a@hamap.local"),))


async def test_catch_all(seeded: SqliteDirectory) -> None:
    assert isinstance(await seeded.resolve("anything@hamap.local"), Invalid)
    await seeded.add_alias("@rocky9-3", ["b@hamap.local"])  # stored for the primary domain
    assert await seeded.resolve("anything@hamap.local") == Alias((Local("b@hamap.local"),))
    assert await seeded.resolve("anything+x@mx1.hamap.local") == Alias((Local("b@hamap.local"),))
    # Users and aliases still win over the catch-all.
    assert await seeded.resolve("a@hamap.local") == Local("a@hamap.local")
    assert (await seeded.list_aliases())[0].source == "@hamap.local"


async def test_postmaster_configured(seeded: SqliteDirectory) -> None:
    await seeded.add_domain("other.example")
    for addr in ("postmaster@hamap.local", "PostMaster@rocky9-3", "postmaster@other.example", "postmaster"):
        assert await seeded.resolve(addr) == Alias((Local("admin@hamap.local"),)), addr
    # An explicit postmaster alias for one domain wins there.
    await seeded.add_alias("postmaster@other.example", ["b@hamap.local"])
    assert await seeded.resolve("postmaster@other.example") == Alias((Local("b@hamap.local"),))


async def test_postmaster_without_configuration(make_directory) -> None:  # type: ignore[no-untyped-def]
    from .conftest import FAST

    async with make_directory(auth=FAST) as d:
        await d.add_domain("hamap.local")
        await d.add_user("a@hamap.local", "x")  # the first user is NOT postmaster
        assert isinstance(await d.resolve("postmaster@hamap.local"), Invalid)
        assert isinstance(await d.resolve("postmaster"), Invalid)
        await d.add_alias("postmaster@hamap.local", ["a@hamap.local"])
        assert await d.resolve("postmaster@hamap.local") == Alias((Local("a@hamap.local"),))


async def test_disabled_user_still_receives(seeded: SqliteDirectory) -> None:
    await seeded.set_disabled("a@hamap.local", True)
    assert await seeded.resolve("a@hamap.local") == Local("a@hamap.local")
