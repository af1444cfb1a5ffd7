"""Which adapter talks to the backend: ``bridge.adapter`` names one, found among the
``tack.backends`` entry points, so a third-party package can add a backend without touching
Tack. The two built-ins are registered there too (pyproject.toml), and are also known here
directly, so a source checkout that was never installed still finds them.

An entry point names a factory ``(settings, *, client, on_call) -> BackendAdapter``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Protocol

import httpx

from cloud_bridge.adapter import BackendAdapter
from cloud_bridge.dingtalk import CallObserver, DingTalkAdapter
from cloud_bridge.wecom import WeComAdapter
from gateway.config import ConfigError, TackSettings

ENTRY_POINT_GROUP = "tack.backends"


class AdapterFactory(Protocol):
    def __call__(
        self,
        settings: TackSettings,
        *,
        client: httpx.AsyncClient | None = None,
        on_call: CallObserver | None = None,
    ) -> BackendAdapter: ...


def _builder(cls: type[DingTalkAdapter]) -> AdapterFactory:
    def build(
        settings: TackSettings,
        *,
        client: httpx.AsyncClient | None = None,
        on_call: CallObserver | None = None,
    ) -> BackendAdapter:
        cfg = settings.bridge
        extra: dict[str, Any] = {"calls_per_s": cfg.rate_per_s} if cfg.rate_per_s else {}
        return cls(
            cfg.base_url,
            cfg.app_key,
            cfg.app_secret,
            timeout_s=cfg.timeout_s,
            concurrency=cfg.concurrency,
            batch_size=cfg.batch_size,
            max_photo_bytes=settings.face.max_bytes,
            client=client,
            on_call=on_call,
            **extra,
        )

    return build


dingtalk = _builder(DingTalkAdapter)
wecom = _builder(WeComAdapter)
BUILT_IN: dict[str, AdapterFactory] = {"dingtalk": dingtalk, "wecom": wecom}


def available() -> dict[str, Callable[[], AdapterFactory]]:
    """Adapter name -> loader of its factory: the built-ins, then the installed entry points
    (which may replace a built-in of the same name)."""
    found: dict[str, Callable[[], AdapterFactory]] = {
        name: functools.partial(_same, factory) for name, factory in BUILT_IN.items()
    }
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep.load
    return found


def _same(factory: AdapterFactory) -> AdapterFactory:
    return factory


def load_adapter(
    settings: TackSettings,
    *,
    client: httpx.AsyncClient | None = None,
    on_call: CallObserver | None = None,
) -> BackendAdapter:
    """The adapter ``bridge.adapter`` names, built from the settings; :class:`ConfigError`
    naming the installed choices when there is no such adapter or it cannot be loaded."""
    name = settings.bridge.adapter
    loaders = available()
    if name not in loaders:
        raise ConfigError(
            f"bridge.adapter = {name!r} is not an installed backend adapter; "
            f"choose one of {', '.join(sorted(loaders))}"
        )
    try:
        factory = loaders[name]()
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"bridge.adapter = {name!r}: its entry point in group {ENTRY_POINT_GROUP!r} "
            f"could not be loaded ({exc}); reinstall the package that provides it"
        ) from exc
    return factory(settings, client=client, on_call=on_call)
