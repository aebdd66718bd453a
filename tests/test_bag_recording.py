"""Recorder logic without DDS: message type names from the graph or a bag's metadata are checked
before anything is imported (issue #13 item 15)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from wm_agent.bags.recording import RateLimiter, check_type_name, message_class, parse_rates
from wm_agent.errors import BagError, ConfigError
from wm_agent.interfaces import require_interfaces

msgs, _ = require_interfaces()


@pytest.mark.parametrize("name", [
    "os/path/join",                       # a module and a function, not pkg/msg/Type
    "a.b/msg/C",                          # dotted: would import a.b.msg
    "std_msgs/msg/",                      # no type
    "std_msgs/msg/Header/extra",
    "std_msgs/srv/Empty",                 # a service, not a message
    "../evil/msg/X",
    "std_msgs/msg/Héader",                # identifiers are ASCII
    "std_msgs/msg/Header ",
    "",
])
def test_type_names_that_are_not_pkg_msg_type_are_rejected_before_importing(name: str) -> None:
    with pytest.raises(BagError, match="not a ROS 2 message type name"):
        message_class(name)
    with pytest.raises(BagError, match="not a ROS 2 message type name"):
        check_type_name(name)


def test_only_registered_interface_packages_are_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A well-formed name of a Python package that is not a ROS interface package: never imported
    (its import would run its code), a BagError naming the ament index instead."""
    marker = tmp_path / "imported"
    pkg = tmp_path / "evilpkg"
    (pkg / "msg").mkdir(parents=True)
    (pkg / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('side effect')\n")
    (pkg / "msg" / "__init__.py").write_text("class Foo:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BagError, match=r"evilpkg.*not a ROS 2 interface package.*ament index"):
        message_class("evilpkg/msg/Foo")
    assert not marker.exists(), "the package was imported before its name was checked"


def test_attributes_that_are_not_message_classes_are_rejected() -> None:
    with pytest.raises(BagError, match="not a message class"):
        message_class("std_msgs/msg/__name__")
    with pytest.raises(BagError, match="is not installed"):
        message_class("std_msgs/msg/NoSuchType")


def test_message_classes_resolve() -> None:
    from std_msgs.msg import Header

    assert message_class("wm_agent_msgs/msg/FleetState") is msgs.FleetState
    assert message_class("std_msgs/msg/Header") is Header
    assert check_type_name("nav_msgs/msg/Odometry") == ("nav_msgs", "Odometry")


def test_a_rate_keeps_one_message_per_window_of_message_time() -> None:
    limiter = RateLimiter(parse_rates(["/fleet/state=5", ""]))
    stamps = [round(k * 1e9 / 24) for k in range(240)]  # 24 Hz for 10 s
    kept = [s for s in stamps if limiter.keep("/fleet/state", s)]
    assert len(kept) == 50  # 5 Hz
    assert all(b - a < 2e8 + 1e9 / 24 for a, b in itertools.pairwise(kept))  # no window skipped
    assert len({s // 200_000_000 for s in kept}) == 50  # one per 0.2 s window
    assert all(limiter.keep("/clock", s) for s in stamps)  # other topics in full
    assert limiter.custom_data() == {"wm_agent.rate./fleet/state": "5",
                                     "wm_agent.decimated./fleet/state": "190"}
    assert limiter.keep("/fleet/state", 0)  # time went back: record again


def test_rate_globs_and_bad_entries() -> None:
    limiter = RateLimiter(parse_rates(["/drone_*/odom=2"]))
    assert limiter.interval_ns("/drone_7/odom") == 500_000_000
    assert limiter.interval_ns("/fleet/state") == 0
    for bad in ("/fleet/state", "fleet/state=5", "/fleet/state=0", "/fleet/state=-1",
                "/fleet/state=nan", "/fleet/state=fast"):
        with pytest.raises(ConfigError, match="TOPIC=HZ"):
            parse_rates([bad])
