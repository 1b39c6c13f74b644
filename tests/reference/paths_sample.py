"""A small known data set for the Sankey paths route, with its answers worked out by hand.

Four sessions of page views (paths below), plus events that are no step of a page-view path:
a click, a page view without a path, a marker, and a bot's session (left out without
``includeBots``).

    s1: /  /pricing  /pricing  /docs  /      (the repeated /pricing is one step)
    s2: /  /pricing  /docs                   (the last two at the same millisecond: ordered by
                                              path, so the steps are /  /docs  /pricing)
    s3: /pricing  /docs
    s4: /  /pricing  /signup
"""

from __future__ import annotations

from typing import Any

T0 = 1_780_000_000_000  # 2026-05-28T20:26:40Z
RANGE = {"startDate": "2026-05-01", "endDate": "2026-06-30", "timezone": "UTC"}
SESSIONS = {
    "s1": ["/", "/pricing", "/pricing", "/docs", "/"],
    "s2": ["/", "/pricing", "/docs"],
    "s3": ["/pricing", "/docs"],
    "s4": ["/", "/pricing", "/signup"],
    "bot": ["/", "/admin"],
}


def events() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(sid: str, k: int, name: str, path: str, at: int, bot: int = 0) -> None:
        out.append(
            {
                "_t": "events",
                "id": f"{sid}-{k}",
                "name": name,
                "device_id": f"dev-{sid}",
                "session_id": sid,
                "path": path,
                "created_at": at,
                "received_at": at,
                "is_bot": bot,
                "properties": {},
            }
        )

    for n, (sid, paths) in enumerate(SESSIONS.items()):
        base = T0 + n * 3600_000
        bot = int(sid == "bot")
        add(sid, 99, "session_start", "", base, bot)
        for k, path in enumerate(paths):
            add(sid, k, "page_view", path, base + 1000 * (k + 1), bot)
        add(sid, 50, "click", "/pricing", base + 1500, bot)  # between the first two page views
        add(sid, 51, "page_view", "", base + 2500, bot)  # no path: no step
    # s2's /pricing and /docs at the same millisecond: ordered by path, /docs first
    for e in out:
        if e["id"] == "s2-2":
            e["created_at"] = e["received_at"] = e["created_at"] - 1000
    return out


# the answers, for RANGE without filters or bots
NO_ANCHOR_DEPTH_3 = {
    "nodes": [
        {"step": 1, "name": "/", "sessions": 3},
        {"step": 1, "name": "/pricing", "sessions": 1},
        {"step": 2, "name": "/docs", "sessions": 2},
        {"step": 2, "name": "/pricing", "sessions": 2},
        {"step": 3, "name": "/docs", "sessions": 1},
        {"step": 3, "name": "/pricing", "sessions": 1},
        {"step": 3, "name": "/signup", "sessions": 1},
    ],
    "links": [
        {"step": 1, "source": "/", "target": "/pricing", "sessions": 2},
        {"step": 1, "source": "/", "target": "/docs", "sessions": 1},
        {"step": 1, "source": "/pricing", "target": "/docs", "sessions": 1},
        {"step": 2, "source": "/docs", "target": "/pricing", "sessions": 1},
        {"step": 2, "source": "/pricing", "target": "/docs", "sessions": 1},
        {"step": 2, "source": "/pricing", "target": "/signup", "sessions": 1},
    ],
}
# width 1: the other values of a step fold into its other node (name null)
NO_ANCHOR_DEPTH_3_WIDTH_1 = {
    "nodes": [
        {"step": 1, "name": "/", "sessions": 3},
        {"step": 1, "name": None, "sessions": 1},
        {"step": 2, "name": "/docs", "sessions": 2},
        {"step": 2, "name": None, "sessions": 2},
        {"step": 3, "name": None, "sessions": 2},
        {"step": 3, "name": "/docs", "sessions": 1},
    ],
    "links": [
        {"step": 1, "source": "/", "target": None, "sessions": 2},
        {"step": 1, "source": "/", "target": "/docs", "sessions": 1},
        {"step": 1, "source": None, "target": "/docs", "sessions": 1},
        {"step": 2, "source": "/docs", "target": None, "sessions": 1},
        {"step": 2, "source": None, "target": "/docs", "sessions": 1},
        {"step": 2, "source": None, "target": None, "sessions": 1},
    ],
}
# ending at the last /docs of each session: the paths end at step 3 (= depth)
END_DOCS_DEPTH_3 = {
    "nodes": [
        {"step": 1, "name": "/", "sessions": 1},
        {"step": 2, "name": "/pricing", "sessions": 2},
        {"step": 2, "name": "/", "sessions": 1},
        {"step": 3, "name": "/docs", "sessions": 3},
    ],
    "links": [
        {"step": 1, "source": "/", "target": "/pricing", "sessions": 1},
        {"step": 2, "source": "/pricing", "target": "/docs", "sessions": 2},
        {"step": 2, "source": "/", "target": "/docs", "sessions": 1},
    ],
}
# from the first /pricing of each session (s2's is its last step)
START_PRICING_DEPTH_2 = {
    "nodes": [
        {"step": 1, "name": "/pricing", "sessions": 4},
        {"step": 2, "name": "/docs", "sessions": 2},
        {"step": 2, "name": "/signup", "sessions": 1},
    ],
    "links": [
        {"step": 1, "source": "/pricing", "target": "/docs", "sessions": 2},
        {"step": 1, "source": "/pricing", "target": "/signup", "sessions": 1},
    ],
}
CASES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"depth": 3}, NO_ANCHOR_DEPTH_3),
    ({"depth": 3, "width": 1}, NO_ANCHOR_DEPTH_3_WIDTH_1),
    ({"depth": 3, "end": "/docs"}, END_DOCS_DEPTH_3),
    ({"depth": 2, "start": "/pricing"}, START_PRICING_DEPTH_2),
    ({"start": "/nowhere"}, {"nodes": [], "links": []}),
]
