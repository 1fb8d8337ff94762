"""Dependencies point one way (STYLE §1): a wrong-way import fails here."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "homeserver"

# Layer of each top-level module or package of homeserver, and what it may import.
LEAVES = {"errors", "logs", "alarm", "batching", "admission", "clock"}
RULES: dict[str, set[str]] = {
    "events": {"errors"},
    "bus": {"errors"},
    "projections": {"events", "errors"},
    "store": {"events", "projections", "errors"},
    # Services: may use each other (never in a cycle: checked below).
    "log": {"store", "events", "projections", "errors", "bus"},
    "rooms": {
        "store",
        "events",
        "projections",
        "errors",
        "log",
        "accounts",
        "account_data",
        "bus",
    },
    "accounts": {"store", "events", "projections", "errors", "log", "bus", "ratelimit"},
    "sync": {
        "store",
        "events",
        "projections",
        "errors",
        "log",
        "rooms",
        "accounts",
        "account_data",
        "bus",
        "push",
    },
    # account_data/: account data, tags and the ignore list, which many services read.
    "account_data": {"store", "events", "errors", "log"},
    "receipts": {"store", "events", "projections", "errors", "log", "account_data"},
    "typing_notices": {"store", "errors", "sync", "bus"},
    "presence": {"store", "events", "errors", "sync", "bus"},
    "to_device": {"store", "events", "errors", "sync"},
    # push/: rules, pushers, the follower that notifies; sync/ counts with its rules.
    "push": {
        "store",
        "events",
        "projections",
        "errors",
        "log",
        "rooms",
        "accounts",
        "account_data",
        "bus",
    },
    "audit": {"events", "errors", "store", "projections"},
    "metrics": {"events"},
    "roles": {"store", "events", "projections", "errors", "rooms"},
    "channels": {"store", "events", "projections", "errors", "log", "rooms", "roles"},
    "friends": {"store", "events", "projections", "errors", "log", "account_data"},
    # media/ is used by others for mxc:// checks (media.uris), so it imports no other service.
    "media": {"store", "events", "projections", "errors", "log", "ratelimit"},
    # ratelimit/: token buckets, in this process or in Redis; asked by api/ and services.
    "ratelimit": {"errors", "store"},
    # search/: message search and the public room directory.
    "search": {"store", "events", "projections", "errors", "log", "rooms", "sync", "account_data"},
    # profiles/: profiles and the user directory.
    "profiles": {"store", "events", "projections", "errors", "log", "rooms", "media"},
    "device_control": {"store", "events", "projections", "errors", "log", "accounts"},
    # e2ee/: keys, device lists, backups; its chain rule lives in events/content/e2ee.py,
    # so rooms/ never imports it.
    "e2ee": {"store", "events", "projections", "errors", "log", "accounts", "bus", "sync"},
    # email/: addresses as identifiers (a UIA stage, bindings), sending mail, and the
    # follower that mails missed messages (with push/'s rules).
    "email": {
        "store",
        "events",
        "projections",
        "errors",
        "log",
        "accounts",
        "ratelimit",
        "push",
        "rooms",
        "account_data",
        "bus",
    },
    # moderation/: reports, mutes and shadow-bans.
    "moderation": {
        "store",
        "events",
        "projections",
        "errors",
        "log",
        "rooms",
        "roles",
        "account_data",
        "admin",
    },
    # admin/: who is a server admin, the audit trail, and the admin API's services.
    "admin": {
        "store",
        "events",
        "projections",
        "errors",
        "log",
        "accounts",
        "bus",
        "profiles",
        "rooms",
        "ratelimit",
        "media",
        "email",
    },
    "config": set(),
    # supervisor.py: the process that starts the workers (cli.py's `run --workers`).
    "supervisor": {"config"},
    "api": {
        "accounts",
        "rooms",
        "sync",
        "events",
        "errors",
        "config",
        "metrics",
        "log",
        "receipts",
        "typing_notices",
        "presence",
        "to_device",
        "push",
        "friends",
        "roles",
        "channels",
        "media",
        "search",
        "profiles",
        "account_data",
        "device_control",
        "e2ee",
        "email",
        "ratelimit",
        "moderation",
        "admin",
    },
}
WIRING = {"app", "cli", "__main__"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "homeserver" and len(parts) > 1:
                found.add(parts[1])
    return found


def _layer_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def test_every_module_imports_only_the_layers_below_it() -> None:
    wrong: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        layer = _layer_of(path)
        if layer in WIRING or layer == "__init__":
            continue
        allowed = RULES.get(layer, set()) | LEAVES | {layer}
        for target in _imports(path) - allowed:
            wrong.append(f"{path.relative_to(PACKAGE.parent)} imports homeserver.{target}")
    assert wrong == [], "\n".join(wrong)


def test_nothing_imports_the_http_layer_or_the_wiring() -> None:
    wrong = [
        str(path.relative_to(PACKAGE.parent))
        for path in PACKAGE.rglob("*.py")
        if _layer_of(path) not in WIRING | {"api"} and _imports(path) & ({"api"} | WIRING)
    ]
    assert wrong == []


def test_services_do_not_import_each_other_in_a_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        layer = _layer_of(path)
        graph.setdefault(layer, set()).update(_imports(path) - {layer})

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, set()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = [layer for layer in graph if layer not in WIRING and reaches(layer, layer, set())]
    assert cycles == []
