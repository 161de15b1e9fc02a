"""``wothub groups list|add|remove|show``: groups of Things from the command line, over
the hub's HTTPS API with the actions of ``urn:wothub:groups`` (docs/groups.md). Where
the hub is and who is asking: as for ``wothub clients`` (hub/admin_cli.py); defining
and removing groups needs a manager or an administrator."""

from __future__ import annotations

import argparse
from typing import Any

from vocabulary.things import GROUPS_THING

from .admin_cli import EXIT_USAGE, CommandError, _listing, _run, _shown, _subcommands, print_json
from .commands import add_command

_COLUMNS = [("name", "NAME"), ("title", "TITLE"), ("membership", "MEMBERS")]


def _row(group: dict[str, Any]) -> dict[str, Any]:
    """The group as one line: its listed ids, or its query."""
    if "members" in group:
        membership = f"{len(group['members'])} listed"
    else:
        membership = " ".join(f"{key}={value}" for key, value in group["query"].items())
    return {**group, "membership": membership}


async def _list(client, args) -> int:
    groups = await client.invoke_service(GROUPS_THING, "listGroups", {})
    return _listing(args, groups if args.json else [_row(g) for g in groups], _COLUMNS)


async def _add(client, args) -> int:
    query = {k: v for k, v in (("agent", args.agent), ("type", args.type)) if v}
    if args.filter:
        query["filter"] = args.filter
    if bool(args.member) == bool(query):
        raise CommandError(
            "a group has either members (--member ID, repeated) or a query (--agent, "
            "--type, --filter); give one of them",
            EXIT_USAGE,
        )
    data: dict[str, Any] = {"name": args.name}
    data |= {"members": args.member} if args.member else {"query": query}
    if args.title:
        data["title"] = args.title
    group = await client.invoke_service(GROUPS_THING, "defineGroup", data)
    return _shown(args, _row(group), [*_COLUMNS, ("created", "CREATED")])


async def _remove(client, args) -> int:
    group = await client.invoke_service(GROUPS_THING, "removeGroup", {"name": args.name})
    return _shown(args, _row(group), _COLUMNS)


async def _show(client, args) -> int:
    group = await client.invoke_service(GROUPS_THING, "getGroup", {"name": args.name})
    if args.json:
        print_json(group)
        return 0
    _listing(args, [_row(group)], _COLUMNS)
    print()
    _listing(args, [{"id": i} for i in group["memberIDs"]], [("id", "MEMBER")])
    for missing in group.get("missing", []):
        print(f"(listed, not registered: {missing})")
    return 0


def _configure(parser: argparse.ArgumentParser) -> None:
    def named(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("name", metavar="NAME", help="the group's name")

    def add(sub: argparse.ArgumentParser) -> None:
        named(sub)
        sub.add_argument("--title", metavar="TEXT", help="a title for people")
        sub.add_argument(
            "--member", action="append", metavar="ID", help="a member's Thing id (repeat it)"
        )
        sub.add_argument("--agent", metavar="ID", help="query: the Things this agent registered")
        sub.add_argument("--type", metavar="TYPE", help="query: the Things of this @type")
        sub.add_argument("--filter", metavar="JSONPATH", help="query: e.g. $[?@.title=='Lamp']")

    _subcommands(
        parser,
        [
            ("list", "list the groups", lambda sub: None, _list),
            ("add", "create or replace a group", add, _add),
            ("remove", "remove a group (its Things stay)", named, _remove),
            ("show", "a group and its members now", named, _show),
        ],
    )


add_command("groups", "groups of Things (docs/groups.md)", _configure, _run)
