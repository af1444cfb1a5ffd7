"""Devices: list with presence and firmware, detail, add (returns the MQTT password once),
revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field, field_validator

from devices.protocol.limits import MAX_DEVICE_ID_CHARS
from devices.protocol.topics import valid_id
from gateway.admin import device_ops, queries
from gateway.admin.auth import Principal, context, requires
from gateway.admin.errors import ApiError
from gateway.admin.permissions import Permission
from gateway.store.devices import DeviceType

router = APIRouter(prefix="/devices", tags=["devices"])

_ID_RULE = f"1-{MAX_DEVICE_ID_CHARS} of A-Z a-z 0-9 _ - starting with a letter or digit"


class NewDevice(BaseModel):
    device_id: str = Field(description=_ID_RULE)
    type: DeviceType = DeviceType.CLOCK_TERMINAL
    name: str = Field("", max_length=64, description="A name people recognise: 'Lobby door'.")
    room_id: str | None = Field(None, description="The room a meeting panel shows.")

    @field_validator("device_id", "room_id")
    @classmethod
    def _id(cls, value: str | None) -> str | None:
        if value is not None and not valid_id(value, MAX_DEVICE_ID_CHARS):
            raise ValueError(f"not a valid id; use {_ID_RULE}")
        return value


@router.get("", dependencies=[requires(Permission.DEVICES_READ)])
async def list_devices(
    request: Request,
    q: Annotated[str, Query(max_length=64, description="Part of the id, name or room.")] = "",
    state: Annotated[str, Query(pattern="^(|online|offline|revoked)$")] = "",
) -> dict[str, object]:
    views = await queries.devices(context(request).db, q, state)
    return {"items": [v.as_dict() for v in views], "total": len(views)}


@router.get("/{device_id}", dependencies=[requires(Permission.DEVICES_READ)])
async def device_detail(device_id: str, request: Request) -> dict[str, object]:
    view = await queries.device(context(request).db, device_id)
    if view is None:
        raise ApiError(404, "no_such_device", f"no device {device_id!r}; see GET /api/devices")
    return view.as_dict()


@router.post("", status_code=201)
async def add_device(
    body: NewDevice,
    request: Request,
    me: Annotated[Principal, requires(Permission.DEVICES_WRITE)],
) -> dict[str, object]:
    """The answer holds the device's MQTT password. It is shown this once and never stored in
    clear: put it on the device now (docs/device-credentials.md)."""
    password = await device_ops.add_device(
        context(request), me.actor, body.device_id, body.type, body.name, body.room_id
    )
    return {
        "device_id": body.device_id,
        "mqtt_username": body.device_id,
        "mqtt_password": password,
        "note": "shown once: store it on the device now; it cannot be read again",
    }


@router.post("/{device_id}/revoke")
async def revoke_device(
    device_id: str,
    request: Request,
    me: Annotated[Principal, requires(Permission.DEVICES_WRITE)],
) -> dict[str, object]:
    await device_ops.revoke_device(context(request), me.actor, device_id)
    return {"device_id": device_id, "state": "revoked"}
