"""The development secret key kept in the data folder, shared by the settings and by
``make serve``'s launcher (which hands it to every process it starts)."""

import os
import secrets
from pathlib import Path


def stored_secret_key(var_dir: Path) -> str:
    """The key in ``var_dir / "secret_key"``, made once (mode 600)."""
    return stored_secret(var_dir / "secret_key")


def stored_secret(path: Path, length: int = 50) -> str:
    """The random secret in ``path``, made once (mode 600). ``O_EXCL``: two processes
    starting at once agree on the first one written."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(length))
    return path.read_text().strip()
