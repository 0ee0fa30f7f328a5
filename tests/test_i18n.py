"""Every text a shopper or a shop admin reads in the plugin templates is marked for translation.

A heuristic, not an HTML parser: after blanking what is translated or invisible (Django
comments, ``{% translate %}``, ``{% blocktranslate %}`` blocks, variables, other tags,
``<script>`` and ``<style>``), any letter left in a text node, or in an ``alt``, ``title``,
``aria-label`` or ``placeholder`` attribute, is an offence. Digits, punctuation, ``·``, ``€``
and the like carry no language and pass. ``<script>`` text is not scanned: the admin
scripts show labels the server translated (``status_label``, ``error_label``,
``steps_label`` in the status JSON), which the last test checks.
"""

import re
from pathlib import Path

import pytest
from django.template.loader import get_template
from django.urls import reverse
from django.utils import translation

import lookalike
import recommendations
import visualsearch
from lookalike.jobs.models import Job
from recommendations.services.training import TRAIN_HANDLER, TRAIN_LOCK_KEY
from visualsearch.indexing.jobs import HANDLER, LOCK_KEY

TEMPLATE_DIRS = [
    Path(app.__file__).parent / "templates" for app in (visualsearch, recommendations, lookalike)
]
TRANSLATED_ATTRIBUTES = ("alt", "title", "aria-label", "placeholder")

_BLOCKS = [
    re.compile(r"{%\s*comment\b.*?%}.*?{%\s*endcomment\s*%}", re.S),
    re.compile(r"{#.*?#}", re.S),
    re.compile(r"{%\s*blocktrans(?:late)?\b.*?{%\s*endblocktrans(?:late)?\s*%}", re.S),
    re.compile(r"<(script|style)\b.*?</\1\s*>", re.S | re.I),
    re.compile(r"<!--.*?-->", re.S),
    # Every other Django tag ({% translate %} among them) and every variable.
    re.compile(r"{%.*?%}|{{.*?}}", re.S),
    re.compile(r"&#?\w+;"),
]
_TAG = re.compile(r"<[^>]*>", re.S)
_ATTRIBUTE = re.compile(
    rf"""\s({"|".join(TRANSLATED_ATTRIBUTES)})\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.I
)
_LETTER = re.compile(r"[^\W\d_]")


def _blank(match):
    """Spaces for the matched text, keeping its newlines so that line numbers hold."""
    return re.sub(r"[^\n]", " ", match.group(0))


def untranslated(source):
    """(line, text) for each piece of visible text in ``source`` that is not translated."""
    for pattern in _BLOCKS:
        source = pattern.sub(_blank, source)
    offences = []

    def line_of(offset):
        return source.count("\n", 0, offset) + 1

    for tag in _TAG.finditer(source):
        for attribute in _ATTRIBUTE.finditer(tag.group(0)):
            value = attribute.group(2) if attribute.group(2) is not None else attribute.group(3)
            if _LETTER.search(value):
                at = tag.start() + attribute.start(1)
                offences.append((line_of(at), f'{attribute.group(1)}="{value.strip()}"'))
    text = _TAG.sub(_blank, source)
    for number, line in enumerate(text.splitlines(), 1):
        if _LETTER.search(line):
            offences.append((number, " ".join(line.split())))
    return sorted(offences)


def plugin_templates():
    return sorted(path for folder in TEMPLATE_DIRS for path in folder.rglob("*.html"))


@pytest.mark.parametrize(
    "source",
    [
        "<h1>{% translate 'Search' %}</h1>",
        '<img src="{{ url }}" alt="{{ card.title }}">',
        '<img alt="{% translate "Your photo" %}">',
        "{% blocktranslate count n=x %}{{ n }} item{% plural %}{{ n }} items"
        "{% endblocktranslate %}",
        "<p>{{ price }} € · {{ done }} / {{ total }} — 42%</p>",
        "{% comment %}Developers read this.{% endcomment %}<script>alert('hi')</script>",
        '<div class="vs-bar" data-field="status_label" style="width:10%"></div>',
        "<p>&nbsp;&times;</p>",
    ],
)
def test_heuristic_passes_translated_or_languageless_text(source):
    assert untranslated(source) == []


@pytest.mark.parametrize(
    ("source", "offence"),
    [
        ("<h2>Index</h2>", (1, "Index")),
        ("<p>\n  {{ n }} steps.</p>", (2, "steps.")),
        ('<img src="x.png" alt="Photo">', (1, 'alt="Photo"')),
        ('<input aria-label="{% if a %}Size{% endif %}">', (1, 'aria-label="Size"')),
        ("<td>{{ x }}</td><td>in use</td>", (1, "in use")),
    ],
)
def test_heuristic_finds_untranslated_text(source, offence):
    assert untranslated(source) == [offence]


def test_plugin_templates_mark_every_visible_text_for_translation():
    offences = [
        f"{path.relative_to(Path(lookalike.__file__).parent.parent)}:{line}: {text}"
        for path in plugin_templates()
        for line, text in untranslated(path.read_text())
    ]
    assert not offences, "Text outside {% translate %}:\n" + "\n".join(offences)


@pytest.mark.parametrize("path", plugin_templates(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_plugin_templates_load_i18n_and_compile(path):
    source = path.read_text()
    if re.search(r"{%\s*(translate|trans|blocktranslate|blocktrans)\b", source):
        assert re.search(r"{%\s*load\b[^%]*\bi18n\b", source), f"{path} needs {{% load i18n %}}"
    name = str(path.relative_to(next(d for d in TEMPLATE_DIRS if d in path.parents)))
    get_template(name)


@pytest.mark.django_db
def test_admin_pages_and_status_json_work_with_another_language_active(admin_client):
    """Lazy labels become text before JSON sees them; plurals are picked by the server."""
    Job.objects.create(
        handler=HANDLER,
        lock_key=LOCK_KEY,
        status=Job.Status.FAILED,
        error_count=2,
        errors=[{"item": 1, "reason": "unreadable"}, {"item": 2, "reason": "unreadable"}],
    )
    Job.objects.create(
        handler=TRAIN_HANDLER, lock_key=TRAIN_LOCK_KEY, status=Job.Status.RUNNING, done=3, total=31
    )
    with translation.override("de"):
        for name in (
            "admin:visualsearch_indexjob_changelist",
            "admin:recommendations_recommendermodel_changelist",
        ):
            assert admin_client.get(reverse(name)).status_code == 200
        jobs = admin_client.get(reverse("admin:visualsearch_indexjob_status")).json()["jobs"]
        status = admin_client.get(reverse("admin:recommendations_recommendermodel_train_status"))
    # In German, with the plural the server picked.
    assert jobs[0]["error_label"] == "2 Fehler"
    assert status.json()["job"]["steps_label"] == "3 / 31 Schritte."
