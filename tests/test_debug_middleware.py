"""With DEBUG on (``make demo``), a request with too many parameters in its address is the
400 it is with DEBUG off, not the 500 of Django's debug page failing on it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings

ROOT = Path(__file__).resolve().parent.parent
MANY = "&".join(f"a{i}=1" for i in range(django_settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/search/", "/api/products/1/similar/"])
def test_too_many_parameters_are_a_400_with_debug_on(client, settings, path):
    settings.DEBUG = True
    settings.MIDDLEWARE = ["config.debug.TooManyFieldsMiddleware", *settings.MIDDLEWARE]
    client.raise_request_exception = False
    response = client.get(f"{path}?{MANY}")
    assert response.status_code == 400
    if path.startswith("/api/"):
        assert response.json() == {"detail": "The request has too many parameters."}
    else:
        assert b"Bad Request (400)" in response.content


def test_the_settings_install_it_with_debug_only():
    code = "from django.conf import settings; print(settings.MIDDLEWARE[0])"
    for debug, expected in (("1", "config.debug.TooManyFieldsMiddleware"), ("0", "django")):
        env = {**os.environ, "DJANGO_DEBUG": debug, "DJANGO_SETTINGS_MODULE": "config.settings"}
        env.setdefault("DJANGO_SECRET_KEY", "test-only")
        out = subprocess.run(
            [sys.executable, "-c", f"import django; django.setup(); {code}"],
            cwd=ROOT, env=env, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert out.strip().startswith(expected), out
