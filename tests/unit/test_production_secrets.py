"""STOCKSENSE_ENVIRONMENT=production refuses empty secrets and anything shaped like a
placeholder, in one line naming the channel and the field; real-looking values pass."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from core.errors import ConfigError
from core.settings import load_settings

TOKEN = "4e1b8f2a9c7d6e5f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f"
SIGNING = "SEC7d2f9a1b3c5e7f9a0b2c4d6e8f0a1b3c5d7e9f1a2b4c6d8e0f2a4b6c8d0e2f4a6"
WECOM_KEY = "693a91f6-7111-4bc4-97a0-0ec2b5fa5aaa"
DINGTALK = "https://oapi.dingtalk.com/robot/send?access_token="
WECOM = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key="


def dingtalk(url: str = DINGTALK + TOKEN, **more: Any) -> dict[str, Any]:
    return {"name": "ops", "kind": "dingtalk", "url": url, "secret": SIGNING, **more}


def wecom(url: str) -> dict[str, Any]:
    return {"name": "floor", "kind": "wecom", "url": url}


def webhook(url: str) -> dict[str, Any]:
    return {"name": "erp", "kind": "webhook", "url": url}


REFUSED: list[tuple[dict[str, Any], str]] = [
    (dingtalk(DINGTALK + "CHANGE_ME"), "channel 'ops' (dingtalk) url access_token looks like a"),
    (dingtalk(DINGTALK + "<secret>"), "channel 'ops' (dingtalk) url looks like a placeholder"),
    (dingtalk(DINGTALK + "your-secret"), "url access_token looks like a placeholder"),
    (dingtalk(DINGTALK + "TODO"), "url access_token looks like a placeholder"),
    (dingtalk(DINGTALK + "xxxxxxxx"), "url access_token looks like a placeholder"),
    (dingtalk(DINGTALK), "channel 'ops' (dingtalk) url access_token is empty"),
    (dingtalk(DINGTALK + "%20%20"), "url access_token is empty"),
    (dingtalk("https://oapi.dingtalk.com/robot/send"), "url has no access_token"),
    (dingtalk(secret=None), "channel 'ops' (dingtalk) secret is not set"),
    (dingtalk(secret="SECxxxxxxxxxxxxxxxx"), "channel 'ops' (dingtalk) secret looks like a"),
    (dingtalk(secret="   "), "channel 'ops' (dingtalk) secret is empty"),
    (dingtalk(secret="changeme"), "secret looks like a placeholder"),
    (dingtalk(secret="SEC-PLACEHOLDER"), "secret looks like a placeholder"),
    (wecom(WECOM + "change_me"), "channel 'floor' (wecom) url key looks like a placeholder"),
    (wecom(WECOM + "example"), "url key looks like a placeholder"),
    (wecom(WECOM + "dummy"), "url key looks like a placeholder"),
    (wecom(WECOM + "test"), "url key looks like a placeholder"),
    (wecom(WECOM + "secret"), "url key looks like a placeholder"),
    (wecom(WECOM + "your_key_here"), "url key looks like a placeholder"),
    (wecom(WECOM + "..."), "url key looks like a placeholder"),
    (wecom(WECOM), "url key is empty"),
    (wecom("https://qyapi.weixin.qq.com/cgi-bin/webhook/send"), "url has no key"),
    (webhook("https://example.com/hooks/stocksense"), "channel 'erp' (webhook) url has a"),
    (webhook("https://erp.example.org/hook"), "url has a placeholder host"),
    (webhook("<your webhook URL>"), "channel 'erp' (webhook) url looks like a placeholder"),
    (webhook(""), "channel 'erp' (webhook) url is empty"),
    (webhook("erp.wh1.internal/hook"), "url is not an http(s) URL"),
    (webhook("https://erp.wh1.internal/hook?token=TBD"), "url token looks like a placeholder"),
]

ACCEPTED: list[dict[str, Any]] = [
    dingtalk(),
    dingtalk(secret=None, allow_unsigned=True),
    wecom(WECOM + WECOM_KEY),
    webhook("https://erp.wh1.internal/hooks/stocksense"),
    webhook("http://10.20.0.15:8080/alerts?token=Zk29fQp1"),
]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """Production, a clean STOCKSENSE_* environment, no .env file."""
    for name in list(os.environ):
        if name.upper().startswith("STOCKSENSE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STOCKSENSE_ENVIRONMENT", "production")
    return monkeypatch


@pytest.mark.parametrize(("channel", "message"), REFUSED)
def test_production_refuses(env: pytest.MonkeyPatch, channel: dict[str, Any], message: str) -> None:
    env.setenv("STOCKSENSE_NOTIFIER__CHANNELS", json.dumps([channel]))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    text = str(caught.value)
    assert text.startswith("STOCKSENSE_NOTIFIER__CHANNELS: channel "), text
    assert message in text
    assert "STOCKSENSE_ENVIRONMENT=production" in text
    assert "\n" not in text
    for secret in (channel["url"], channel.get("secret")):
        if secret and secret.strip() and len(secret) > 12:
            assert secret not in text


@pytest.mark.parametrize("channel", ACCEPTED)
def test_production_accepts_real_looking_values(
    env: pytest.MonkeyPatch, channel: dict[str, Any]
) -> None:
    env.setenv("STOCKSENSE_NOTIFIER__CHANNELS", json.dumps([channel]))
    assert load_settings().notifier.channels[0].name == channel["name"]


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("STOCKSENSE_INFLUX__TOKEN", "CHANGE_ME", "STOCKSENSE_INFLUX__TOKEN looks like a"),
        ("STOCKSENSE_INFLUX__PASSWORD", "<password>", "STOCKSENSE_INFLUX__PASSWORD looks like a"),
        ("STOCKSENSE_MQTT__PASSWORD", "   ", "STOCKSENSE_MQTT__PASSWORD is empty"),
    ],
)
def test_production_refuses_placeholder_store_secrets(
    env: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    env.setenv(variable, value)
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_every_problem_in_one_line(env: pytest.MonkeyPatch) -> None:
    channels = [dingtalk(DINGTALK + "TODO", secret=None), wecom(WECOM)]
    env.setenv("STOCKSENSE_NOTIFIER__CHANNELS", json.dumps(channels))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).split("; ")[:3] == [
        ("STOCKSENSE_NOTIFIER__CHANNELS: channel 'ops' (dingtalk) url access_token looks like a"
        " placeholder"),
        ("STOCKSENSE_NOTIFIER__CHANNELS: channel 'ops' (dingtalk) secret is not set: sign the"
        ' robot and give its SEC... secret, or set "allow_unsigned": true for a robot protected'
        " by keywords or IP ranges"),
        ("STOCKSENSE_NOTIFIER__CHANNELS: channel 'floor' (wecom) url key is empty"
        " (STOCKSENSE_ENVIRONMENT=production refuses placeholders and empty secrets)"),
    ]


@pytest.mark.parametrize(("channel", "message"), REFUSED[:6])
def test_local_runs_accept_placeholders(
    env: pytest.MonkeyPatch, channel: dict[str, Any], message: str
) -> None:
    del message
    env.setenv("STOCKSENSE_ENVIRONMENT", "local")
    env.setenv("STOCKSENSE_NOTIFIER__CHANNELS", json.dumps([channel]))
    assert load_settings().environment == "local"
