"""Full texts rendered once per revision and catalog version, kept per process.

An entitled page or API answer is the same for every reader who may read it, apart
from who they are (the nav, the CSRF token, their gift links): the text, its Verifier
section, the corrections and the structured data change only when the catalog does.
So they are built once and kept under a key that names everything they are built
from: the article, the revision shown, the catalog version read in the same statement
as the article (`catalog.services.article_with_holdings`), and the origin that absolute
URLs are written with. Every write to an article, a revision, a report or a manifest
moves the version in its own transaction (models/catalog.py), so a new revision, report
or correction is never served from an older entry. An entry rendered from data newer
than its key is at worst rebuilt once.

Only what the read gate already let through is stored or served: callers look up an
entry after `read_access` answered FULL, never instead of it. Nothing specific to a
reader is stored; gift pages and private feeds do not use this cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar, cast

T = TypeVar("T")
MAX_ENTRIES = 2048  # texts of a few KB each: a few MB per process at most

RenderKey = tuple[str, int, int | None, int, str]


class RenderCache:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self.entries: OrderedDict[RenderKey, Any] = OrderedDict()
        self.lock = threading.Lock()

    def get_or_build(self, key: RenderKey, build: Callable[[], T]) -> T:
        with self.lock:
            found = self.entries.get(key)
            if found is not None:
                self.entries.move_to_end(key)
                return cast(T, found)
        value = build()  # outside the lock: two threads may build the same entry once each
        with self.lock:
            self.entries[key] = value
            self.entries.move_to_end(key)
            while len(self.entries) > self.max_entries:
                self.entries.popitem(last=False)
        return value

    def get(self, key: RenderKey) -> Any:
        """The entry under `key`, or None (never builds)."""
        with self.lock:
            return self.entries.get(key)

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


renders = RenderCache()


def render_key(
    kind: str, article_id: int, revision_id: int | None, version: int, origin: str
) -> RenderKey:
    return (kind, article_id, revision_id, version, origin)
