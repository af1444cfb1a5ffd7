"""Data protection: the keyring and sealing at rest, key rotation, backups, retention."""
