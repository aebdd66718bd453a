"""The venv's tf2_msgs (vendor/tf2_msgs, built by scripts/setup.sh where PyPI has no wheel) is
upstream's TFMessage: the same RIHS01 type hash as rosbags' store of the ROS 2 types, so the sim
bridge's /tf matches RViz, Foxglove and tf2 listeners."""

from __future__ import annotations

import json
from pathlib import Path

import tf2_msgs
from rosbags.typesys import Stores, get_typestore

REPO = Path(__file__).resolve().parent.parent


def installed_hash() -> str:
    """The type hash rosidl generated for the installed tf2_msgs/msg/TFMessage."""
    share = Path(tf2_msgs.__file__).resolve()
    while share.name != "lib" and share.parent != share:
        share = share.parent
    doc = json.loads((share.parent / "share" / "tf2_msgs" / "msg" / "TFMessage.json").read_text())
    return next(h["hash_string"] for h in doc["type_hashes"] if h["type_name"] == "tf2_msgs/msg/TFMessage")


def test_tf_message_has_the_upstream_type_hash() -> None:
    upstream = get_typestore(Stores.LATEST).hash_rihs01("tf2_msgs/msg/TFMessage")
    assert installed_hash() == upstream


def test_the_vendored_definition_is_upstreams() -> None:
    text = (REPO / "vendor" / "tf2_msgs" / "msg" / "TFMessage.msg").read_text()
    assert text.strip() == "geometry_msgs/TransformStamped[] transforms"
    assert (REPO / "vendor" / "COLCON_IGNORE").is_file(), "robots use their ROS install's tf2_msgs"
