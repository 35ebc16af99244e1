"""The enrolled-device registry ingest checks with known_devices_only."""

from __future__ import annotations

from pathlib import Path

from core.device_registry import DeviceRegistry, topic_grant, username


def _acl(*devices: tuple[str, str, str]) -> str:
    blocks = [f"user {username(*d)}\ntopic write {topic_grant(*d)}\n" for d in devices]
    return "\n".join(blocks)


def test_a_device_enrolled_after_the_last_check_is_known_at_once(tmp_path: Path) -> None:
    acl = tmp_path / "acl"
    acl.write_text(_acl(("wh1", "temp", "probe-a")))
    registry = DeviceRegistry(acl)
    assert registry.knows("wh1/temp/probe-a")  # the periodic check is now some seconds away
    acl.write_text(_acl(("wh1", "temp", "probe-a"), ("wh1", "temp", "probe-b")))
    assert registry.knows("wh1/temp/probe-b")
    assert not registry.knows("wh1/temp/probe-z")
    assert registry.devices == {"wh1/temp/probe-a", "wh1/temp/probe-b"}


def test_a_removed_device_is_still_known_until_the_periodic_check(tmp_path: Path) -> None:
    acl = tmp_path / "acl"
    acl.write_text(_acl(("wh1", "temp", "probe-a"), ("wh1", "temp", "probe-b")))
    registry = DeviceRegistry(acl)
    assert registry.knows("wh1/temp/probe-b")
    acl.write_text(_acl(("wh1", "temp", "probe-a")))
    # Known devices are not re-checked per message; removal takes effect within REFRESH_S.
    assert registry.knows("wh1/temp/probe-b")
    assert not registry.knows("wh1/temp/probe-c")  # an unknown one re-reads the file
    assert not registry.knows("wh1/temp/probe-b")
