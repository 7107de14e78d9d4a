"""The services' one logging set-up (``gpupolicy.plugin.logs``) and the timestamp formats (``timefmt``)."""

from __future__ import annotations

import json
import logging
import re

import pytest

from gpupolicy.plugin import logs
from gpupolicy.plugin.timefmt import kube_micro_time, kube_time, log_time
from tests.logcapture import captured


def test_json_lines_carry_the_fields_in_order_then_the_extras() -> None:
    with captured("json", component="gpupolicy-controller") as stream:
        logging.getLogger("gpupolicy.test").info("placed %s", "one", extra={"unit": "ns/p", "claims": 2})
        logging.getLogger("gpupolicy.test").debug("not at info")
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert list(record) == ["ts", "level", "component", "logger", "msg", "unit", "claims"]
    assert record["level"] == "info" and record["component"] == "gpupolicy-controller"
    assert record["logger"] == "gpupolicy.test" and record["msg"] == "placed one"
    assert (record["unit"], record["claims"]) == ("ns/p", 2)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["ts"])
    assert '"msg": "placed one"' in line  # the separators tests/e2e/controller looks for


def test_an_exception_and_odd_values_stay_one_json_line() -> None:
    with captured("json", level="warning") as stream:
        try:
            raise ValueError("bad\nvalue")
        except ValueError:
            logging.getLogger("x").exception("failed", extra={"path": object(), "level": "not the level"})
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["level"] == "error", "an extra field never overwrites the head"
    assert "ValueError: bad\nvalue" in record["exc"] and record["path"].startswith("<object")


def test_text_format_for_people() -> None:
    with captured("text", level="debug") as stream:
        logging.getLogger("gpupolicy.t").debug("solved", extra={"status": "OPTIMAL", "why": "two words"})
    assert re.fullmatch(r'\S+Z debug gpupolicy\.t: solved status=OPTIMAL why="two words"\n', stream.getvalue()), (
        stream.getvalue()
    )


def test_setup_replaces_its_handler_and_refuses_unknown_formats() -> None:
    with captured("json") as first, captured("json") as second:
        logging.getLogger("gpupolicy.t").warning("once")
    assert first.getvalue() == "" and len(second.getvalue().splitlines()) == 1
    with pytest.raises(ValueError, match="json, text"):
        logs.setup("xml", component="x")


def test_timestamps_one_function_per_format() -> None:
    epoch = 1700000000.1234561
    assert kube_time(epoch) == "2023-11-14T22:13:20Z"
    assert kube_micro_time(epoch) == "2023-11-14T22:13:20.123456Z"
    assert log_time(epoch) == "2023-11-14T22:13:20.123Z"
    assert kube_time(0) == "1970-01-01T00:00:00Z" and kube_micro_time(0) == "1970-01-01T00:00:00.000000Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", kube_time())
