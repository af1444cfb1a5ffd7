"""The Mosquitto broker Tack manages: device credentials, its password and ACL files, TLS
certificates and configuration (docs/device-credentials.md)."""
