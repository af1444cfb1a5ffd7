"""The broker's access rules: a device is confined to its own topics, the gateway to its site.

Device rules are Mosquitto *patterns* (``%u`` is the connected username, which is the device
id), so the ACL never lists devices and adding one changes only the password file. Topics follow
``tack/v1/{site}/{device_id}/{evt|cmd|state}/{name}`` (docs/protocol.md): a device publishes its
events and its presence (also as its last will) and reads its commands; nothing else, not even
another device's retained state.
"""

from __future__ import annotations

HEADER = "# Written by Tack (`tack broker config`, `tack devices ...`); edits are overwritten.\n"


def render_acl(site: str, gateway_username: str) -> str:
    base = f"tack/v1/{site}"
    return (
        HEADER
        + "\n# Every device: username = device id.\n"
        + f"pattern write {base}/%u/evt/#\n"
        + f"pattern write {base}/%u/state/#\n"
        + f"pattern read {base}/%u/cmd/#\n"
        + "\n# The gateway of the site reads and writes everything under it.\n"
        + f"user {gateway_username}\n"
        + f"topic readwrite {base}/#\n"
    )
