"""Fixtures of the contract tests: a simulated clock and the local robots that enforce the
DingTalk and WeCom contracts on it."""

from __future__ import annotations

import secrets as secrets_module
import time
from collections.abc import Iterator

import pytest

from simulators.robots import DingTalkRobot, WeComRobot
from tests.conftest import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    # Ahead of the wall clock, so outbox rows stamped with wall time are due at once.
    return FakeClock(time.time() + 10)


@pytest.fixture
def secret() -> str:
    return "SEC" + secrets_module.token_hex(24)


@pytest.fixture
def dingtalk(clock: FakeClock, secret: str) -> Iterator[DingTalkRobot]:
    robot = DingTalkRobot(secrets_module.token_hex(16), secret, clock=clock).start()
    yield robot
    robot.stop()


@pytest.fixture
def wecom(clock: FakeClock) -> Iterator[WeComRobot]:
    robot = WeComRobot(secrets_module.token_hex(16), clock=clock).start()
    yield robot
    robot.stop()
