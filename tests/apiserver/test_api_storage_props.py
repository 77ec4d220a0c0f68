"""Property tests for the pure parts: storage implementations agree, the watch history resumes
exactly or says Expired."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from vkcompose.apiserver.storage import MemoryStorage, SQLiteStorage
from vkcompose.apiserver.watch import Event, Expired, WatchHub

NAMES = st.sampled_from(["a", "b", "c", "d"])
NAMESPACES = st.sampled_from(["default", "kube-system", ""])
OPS = st.lists(
    st.tuples(
        st.booleans(), st.sampled_from(["pods", "configmaps"]), NAMESPACES, NAMES, st.integers(0, 3)
    ),
    max_size=40,
)


@settings(max_examples=40, deadline=None)
@given(OPS)
def test_memory_and_sqlite_agree_and_sqlite_reloads(
    ops: list[tuple[bool, str, str, str, int]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "s.db"
        mem, sql = MemoryStorage(), SQLiteStorage(db)
        last = 0
        for put, resource, ns, name, value in ops:
            for store in (mem, sql):
                if put:
                    store.put(
                        resource,
                        ns,
                        name,
                        {"metadata": {"namespace": ns, "name": name}, "v": value},
                    )
                elif store.get(resource, ns, name) is not None:
                    store.delete(resource, ns, name)
            assert mem.revision() == sql.revision() >= last
            last = mem.revision()
        reopened = SQLiteStorage(db)
        for resource in ("pods", "configmaps"):
            expected = [(s.obj, s.rv) for s in mem.list(resource)]
            assert [(s.obj, s.rv) for s in sql.list(resource)] == expected
            assert [(s.obj, s.rv) for s in reopened.list(resource)] == expected
            for ns in ("default", ""):
                assert [s.rv for s in reopened.list(resource, ns)] == [
                    s.rv for s in mem.list(resource, ns)
                ]
        assert reopened.revision() == mem.revision()
        keys = [_key(s.obj) for s in mem.list("pods")]
        assert keys == sorted(keys)
        reopened.close()
        sql.close()


def _key(obj: dict[str, dict[str, str]]) -> tuple[str, str]:
    return obj["metadata"]["namespace"], obj["metadata"]["name"]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8), st.integers(0, 30), st.integers(0, 35))
def test_watch_history_resumes_exactly_or_expires(history: int, events: int, since: int) -> None:
    hub = WatchHub(history=history)
    for rv in range(1, events + 1):
        hub.publish(Event(rv, "MODIFIED", "pods", "default", {}, b"{}"))
    dropped = max(0, events - history)
    try:
        sub = hub.subscribe("pods", None, since)
    except Expired as exc:
        assert since < dropped
        assert exc.requested == since
        return
    assert since >= dropped
    assert [e.rv for e in sub.queue] == list(range(since + 1, events + 1))
    sub.close()
    assert hub.watcher_count() == 0
