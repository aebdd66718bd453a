"""Recorder logic without DDS: message type names from the graph or a bag's metadata are checked
before anything is imported (issue #13 item 15)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wm_agent.bags.recording import check_type_name, message_class
from wm_agent.errors import BagError
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
