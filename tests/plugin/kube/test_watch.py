"""``Client.watch`` against a scripted HTTP server: the field selector on the list and on the watch, events and
bookmarks, resuming, listing again on 410, and failures retried with backoff and logged once per outage."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from gpupolicy.plugin.kube import Client
from tests.fakes.http import QuietHandler, serving
from tests.fakes.kubeconfig import write_kubeconfig

SLICES = "/apis/resource.k8s.io/v1/resourceslices"
SELECTOR = "spec.nodeName=node-a,spec.driver=gpu.example.com"
Answer = tuple[int, Any]
"""An HTTP status and a JSON body, or a list of watch events sent as a chunked stream (which then ends)."""


def listed(version: str) -> Answer:
    return 200, {"kind": "ResourceSliceList", "metadata": {"resourceVersion": version}, "items": []}


def event(type_: str, version: str) -> dict[str, Any]:
    return {"type": type_, "object": {"kind": "ResourceSlice", "metadata": {"name": "s", "resourceVersion": version}}}


def status(code: int, reason: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": reason,
        "code": code,
        "message": reason,
    }


@dataclass
class Script:
    """Answers given in order, the last one again and again; each request's path and query is recorded."""

    answers: list[Answer] = field(default_factory=list)
    asked: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)


@pytest.fixture
def server() -> Iterator[tuple[Script, str]]:
    script = Script()

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            try:
                self._answer()
            except (BrokenPipeError, ConnectionResetError):  # the client closed a stream it had read enough of
                self.close_connection = True

        def _answer(self) -> None:
            parts = urlsplit(self.path)
            script.asked.append((parts.path, parse_qs(parts.query)))
            code, body = script.answers[min(len(script.asked), len(script.answers)) - 1]
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            if isinstance(body, list):
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for item in body:
                    line = json.dumps(item).encode() + b"\n"
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.write(b"0\r\n\r\n")
                return
            data = json.dumps(body).encode()
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    with serving(Handler) as url:
        yield script, url


class Stop(threading.Event):
    """A stop event that records the waits asked of it and waits none (backoff without sleeping)."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        if len(self.waits) > 100:  # a test gone wrong: end it
            self.set()
        return self.is_set()


def run(
    tmp_path: Path, url: str, stop: threading.Event, after: int, *, backoff_s: tuple[float, float] = (1.0, 30.0)
) -> tuple[list[str], int]:
    """``Client.watch`` of slices until the ``after``-th event (then stop); the versions of the events seen and how
    often ``listed`` was called."""
    client = Client(write_kubeconfig(tmp_path / "kubeconfig", url), timeout_s=5)
    seen: list[str] = []
    lists = [0]

    def changed() -> None:
        seen.append("event")
        if len(seen) >= after:
            stop.set()

    def count_list() -> None:
        lists[0] += 1

    thread = threading.Thread(
        target=client.watch,
        args=("resourceslices", stop, changed, 7),
        kwargs={"field_selector": SELECTOR, "listed": count_list, "backoff_s": backoff_s},
        daemon=True,
    )
    thread.start()
    thread.join(timeout=10)
    stop.set()
    assert not thread.is_alive(), "the watch did not end on stop"
    client.close()
    return seen, lists[0]


def versions(script: Script) -> list[tuple[str, str]]:
    """Per request: list or watch, and the resourceVersion a watch resumes from."""
    return [("watch", q["resourceVersion"][0]) if q.get("watch") == ["true"] else ("list", "") for _, q in script.asked]


def test_list_and_watch_select_with_the_field_selector_and_events_but_bookmarks_count(
    server: tuple[Script, str], tmp_path: Path
) -> None:
    script, url = server
    script.answers = [
        listed("5"),
        (200, [event("ADDED", "6"), event("BOOKMARK", "7"), event("MODIFIED", "8")]),
        (200, [event("BOOKMARK", "9"), event("DELETED", "10")]),
    ]
    seen, lists = run(tmp_path, url, threading.Event(), after=3)
    assert len(seen) == 3 and lists == 1
    assert versions(script) == [("list", ""), ("watch", "5"), ("watch", "8")], "resumed from the last version"
    (list_path, list_query), *watches = script.asked
    assert list_path == SLICES and list_query == {"fieldSelector": [SELECTOR], "limit": ["1"]}
    for watch_path, query in watches:
        assert watch_path == SLICES and query["fieldSelector"] == [SELECTOR]
        assert query["timeoutSeconds"] == ["7"] and query["allowWatchBookmarks"] == ["true"]


@pytest.mark.parametrize(
    "gone",
    [(200, [event("ERROR", "0") | {"object": status(410, "Expired")}]), (410, status(410, "Gone"))],
    ids=["error-event", "http-410"],
)
def test_a_version_too_old_lists_again_without_backoff_or_warning(
    server: tuple[Script, str], tmp_path: Path, gone: Answer, caplog: pytest.LogCaptureFixture
) -> None:
    script, url = server
    script.answers = [listed("5"), gone, listed("9"), (200, [event("ADDED", "10")])]
    stop = Stop()
    with caplog.at_level(logging.INFO, logger="gpupolicy.plugin.kube.client"):
        seen, lists = run(tmp_path, url, stop, after=1)
    assert seen == ["event"] and lists == 2
    assert versions(script) == [("list", ""), ("watch", "5"), ("list", ""), ("watch", "9")]
    assert stop.waits == [] and caplog.records == []


def test_a_refused_watch_backs_off_and_is_logged_once_per_outage(
    server: tuple[Script, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """RBAC without ``watch``: the list works, the watch is a 403, every try; then it is granted."""
    script, url = server
    script.answers = [listed("5"), (403, status(403, "Forbidden"))] * 4 + [listed("6"), (200, [event("ADDED", "7")])]
    stop = Stop()
    with caplog.at_level(logging.INFO, logger="gpupolicy.plugin.kube.client"):
        seen, lists = run(tmp_path, url, stop, after=1, backoff_s=(0.5, 2.0))
    assert seen == ["event"] and lists == 5
    assert stop.waits == [0.5, 1.0, 2.0, 2.0], "doubling up to the cap, one wait per failed try"
    warning, back = caplog.records
    assert warning.levelno == logging.WARNING and "403" in warning.getMessage() and SELECTOR in warning.getMessage()
    assert back.levelno == logging.INFO and "back after 4 failed tries" in back.getMessage()


def test_an_error_event_other_than_410_backs_off(
    server: tuple[Script, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    script, url = server
    error_event = (200, [event("ERROR", "0") | {"object": status(500, "InternalError")}])
    script.answers = [listed("5"), error_event, listed("6"), (200, [event("ADDED", "7")])]
    stop = Stop()
    with caplog.at_level(logging.WARNING, logger="gpupolicy.plugin.kube.client"):
        seen, lists = run(tmp_path, url, stop, after=1, backoff_s=(0.5, 2.0))
    assert seen == ["event"] and lists == 2 and stop.waits == [0.5]
    (warning,) = caplog.records
    assert "500" in warning.getMessage()


def test_an_unreachable_server_is_retried_until_stopped_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stop = Stop()
    waits = stop.waits

    def wait(timeout: float | None = None) -> bool:  # the tenth wait stops it
        waits.append(timeout)
        if len(waits) == 10:
            stop.set()
        return stop.is_set()

    stop.wait = wait  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="gpupolicy.plugin.kube.client"):
        seen, lists = run(tmp_path, "http://127.0.0.1:1", stop, after=1, backoff_s=(0.1, 0.4))
    assert seen == [] and lists == 0
    assert waits == [0.1, 0.2] + [0.4] * 8
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "unreachable" in caplog.records[0].getMessage()


def test_inform_hands_over_a_paged_list_then_each_events_object_and_lists_again_on_410(
    server: tuple[Script, str], tmp_path: Path
) -> None:
    """What the controller's cache is fed: the list read in pages (``limit``/``continue``), then the watch from the
    list's version with each event's object (bookmarks move the version only), and a whole new list after 410."""
    script, url = server
    item = {"metadata": {"name": "a", "resourceVersion": "3"}}
    script.answers = [
        (200, {"metadata": {"resourceVersion": "5", "continue": "page-2"}, "items": [item]}),
        (200, {"metadata": {"resourceVersion": "5"}, "items": [{"metadata": {"name": "b"}}]}),
        (200, [event("ADDED", "6"), event("BOOKMARK", "7"), event("ERROR", "0") | {"object": status(410, "Gone")}]),
        (200, {"metadata": {"resourceVersion": "9"}, "items": []}),
        (200, [event("DELETED", "10")]),
    ]
    client = Client(write_kubeconfig(tmp_path / "kubeconfig", url), timeout_s=5)
    stop = threading.Event()
    seen: list[tuple[str, Any]] = []

    def replace(items: list[dict[str, Any]], version: str) -> None:
        seen.append(("list", ([i["metadata"]["name"] for i in items], version, items[0]["kind"] if items else "")))

    def changed(type_: str, obj: dict[str, Any]) -> None:
        seen.append((type_, obj["metadata"]["resourceVersion"]))
        if type_ == "DELETED":
            stop.set()

    thread = threading.Thread(target=client.inform, args=("resourceslices", stop, replace, changed, 7), daemon=True)
    thread.start()
    thread.join(timeout=10)
    stop.set()
    client.close()
    assert not thread.is_alive()
    assert seen == [
        ("list", (["a", "b"], "5", "ResourceSlice")),
        ("ADDED", "6"),
        ("list", ([], "9", "")),
        ("DELETED", "10"),
    ]
    queries = [(q.get("limit"), q.get("continue"), q.get("resourceVersion")) for _, q in script.asked]
    assert queries == [
        (["500"], None, None),
        (["500"], ["page-2"], None),
        (None, None, ["5"]),
        (["500"], None, None),
        (None, None, ["9"]),
    ]
