"""The plugin apps ship German: every string marked for translation is translated, the
compiled catalogues are those of the ``.po`` files, and the pages speak it.

``makemessages`` on a copy of each app finds exactly the ``.po`` file's strings, so a string
added to a template or a module without its translation fails here, not in a German shop.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.template import Context, Template
from django.utils import translation

ROOT = Path(__file__).resolve().parent.parent
APPS = ("lookalike", "visualsearch", "recommendations")
LANGUAGES = ("de",)


def catalogue(app, language="de"):
    return ROOT / app / "locale" / language / "LC_MESSAGES" / "django.po"


def entries(path):
    """``{(msgctxt, msgid): entry}`` of a ``.po`` file, each entry a dict of its fields
    (``msgid``, ``msgid_plural``, ``msgstr`` or ``msgstr[0]``...) and ``flags``; the header
    (the empty msgid) left out."""
    found, entry, field = {}, {"flags": ""}, None
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        if not line.strip():
            if entry.get("msgid"):
                found[(entry.get("msgctxt"), entry["msgid"])] = entry
            entry, field = {"flags": ""}, None
        elif line.startswith("#,"):
            entry["flags"] = line
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            entry[field] += _unquote(line)
        else:
            field, _, text = line.partition(" ")
            entry[field] = _unquote(text)
    return found


ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


def _unquote(text):
    return re.sub(r"\\(.)", lambda m: ESCAPES.get(m.group(1), m.group(0)), text.strip()[1:-1])


PLACEHOLDER = re.compile(r"%\(\w+\)s|\{\w+\}")


@pytest.mark.parametrize("app", APPS)
def test_every_string_is_translated(app):
    found = entries(catalogue(app))
    assert len(found) > 20
    strings = {key: [v for k, v in e.items() if k.startswith("msgstr")] for key, e in found.items()}
    assert [key[1] for key, texts in strings.items() if not all(texts)] == []  # untranslated
    assert [key[1] for key, e in found.items() if "fuzzy" in e["flags"]] == []
    # Placeholders survive: a translation uses the original's (a plural's singular may
    # leave the number out, as the English does), and one without plural forms all of them.
    for key, entry in found.items():
        wanted = set(PLACEHOLDER.findall(entry["msgid"] + entry.get("msgid_plural", "")))
        for text in strings[key]:
            used = set(PLACEHOLDER.findall(text))
            assert used <= wanted, (key[1], text)
            if "msgid_plural" not in entry:
                assert used == wanted, (key[1], text)


@pytest.mark.parametrize("app", APPS)
def test_the_compiled_catalogue_is_the_po_file_s(app, tmp_path):
    msgfmt = shutil.which("msgfmt")
    assert msgfmt, "GNU gettext's msgfmt is missing: `make test` installs it"
    compiled = tmp_path / "django.mo"
    source = catalogue(app)
    subprocess.run([msgfmt, "--check-format", "-o", compiled, source], check=True)
    assert compiled.read_bytes() == source.with_suffix(".mo").read_bytes(), (
        f"{source.with_suffix('.mo')} is older than its .po: run "
        f"`cd {app} && ../.venv/bin/python -m django compilemessages`"
    )


@pytest.mark.parametrize("app", APPS)
def test_the_catalogue_holds_every_string_the_app_marks(app, tmp_path):
    copy = tmp_path / app
    shutil.copytree(ROOT / app, copy, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    subprocess.run(
        [sys.executable, "-m", "django", "makemessages", "-l", "de", "--no-obsolete", "-v", "0"],
        cwd=copy,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    marked = set(entries(copy / "locale" / "de" / "LC_MESSAGES" / "django.po"))
    shipped = set(entries(catalogue(app)))
    assert sorted(m[1] for m in marked - shipped) == [], "strings without a German translation"
    assert sorted(m[1] for m in shipped - marked) == [], "translations of strings no longer used"


@pytest.mark.django_db
def test_the_widgets_and_pages_speak_german(client, settings, product_factory, rf):
    """A shop whose language is German shows the plugins' pages and widgets in German."""
    products = product_factory.create_batch(3)
    request = rf.get("/")
    request.session = None
    from django.contrib.auth.models import AnonymousUser

    request.user = AnonymousUser()
    with translation.override("de"):
        strip = Template("{% load recommendations %}{% recommended_for_you %}").render(
            Context({"request": request, "product": products[0]})
        )
    # A new shop's strip: its newest products, titled and explained in German.
    assert '<h2 id="for-you-title">Neu eingetroffen</h2>' in strip
    assert '<span class="reason">Neu eingetroffen</span>' in strip
    settings.LANGUAGE_CODE = "de"
    page = client.get("/visual/photo/").content.decode()
    assert "<h1>Suche per Foto</h1>" in page and "<strong>Foto auswählen</strong>" in page
