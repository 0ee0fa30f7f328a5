#!/usr/bin/env python
"""The Oscar host project's manage.py (run from this folder with the repository's venv)."""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    # The repository root: config.dbbackend and the test encoders live there.
    sys.path.append(str(Path(__file__).resolve().parents[3]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oscarshop.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
