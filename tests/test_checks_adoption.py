"""System checks for mistakes a developer met installing the apps into a shop of their own:
tables keyed for another product model, Django REST framework left out, a product model
named without its app label or with another app's, relative artefact directories in
deployment, the plugin's URLs left out of the URLconf."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.checks import Tags, run_checks
from django.db import connection

from recommendations.checks import check_product_keys as recommendations_keys
from recommendations.experiments.models import Impression
from recommendations.models import Event
from visualsearch.checks import check_contrib_postgres, check_urls
from visualsearch.checks import check_product_keys as visualsearch_keys
from visualsearch.models import IndexFailure, ProductEmbedding

ROOT = Path(__file__).resolve().parent.parent

KEYED_TABLES = [
    (visualsearch_keys, ProductEmbedding, "visualsearch.E014", "visualsearch"),
    (visualsearch_keys, IndexFailure, "visualsearch.E014", "visualsearch"),
    (recommendations_keys, Event, "recommendations.E003", "recommendations"),
    (recommendations_keys, Impression, "recommendations.E003", "recommendations"),
]


def _execute(sql):
    with connection.cursor() as cursor:
        cursor.execute(sql)


@pytest.mark.django_db
def test_tables_keyed_as_the_product_model_pass():
    for check in (visualsearch_keys, recommendations_keys):
        assert "database" in check.tags
        assert check(None, databases=["default"]) == []
        assert check(None, databases=None) == []  # no --database: nothing read


@pytest.mark.django_db
@pytest.mark.parametrize("check, model, check_id, app_label", KEYED_TABLES)
def test_a_table_keyed_for_another_product_model_fails_the_database_checks(
    check, model, check_id, app_label
):
    """The column made by a migrate under another LOOKALIKE_PRODUCT_MODEL (a UUID key)
    while shop.Product's key is a bigint: `migrate` has nothing to apply, and every query
    joining products would fail. (The test's transaction rolls the change back.)"""
    table = connection.ops.quote_name(model._meta.db_table)
    _execute(f"ALTER TABLE {table} DROP COLUMN product_id CASCADE")
    _execute(f"ALTER TABLE {table} ADD COLUMN product_id uuid")
    [error] = [
        m for m in run_checks(tags=[Tags.database], databases=["default"]) if m.id == check_id
    ]
    assert error.msg == (
        f"The table '{model._meta.db_table}' of database 'default' keeps products in "
        "'product_id' as uuid, but the primary key of LOOKALIKE_PRODUCT_MODEL 'shop.Product' "
        f"needs bigint: the {app_label} tables were created for another product model."
    )
    assert f"manage.py migrate {app_label} zero --skip-checks" in error.hint
    assert "LOOKALIKE_PRODUCT_MODEL back" in error.hint
    assert check(None, databases=[]) == []


@pytest.mark.django_db
@pytest.mark.parametrize("check, model, check_id, app_label", KEYED_TABLES)
def test_tables_not_created_yet_pass_the_product_key_check(check, model, check_id, app_label):
    """Before the first `migrate`, which runs the database checks too."""
    _execute(f"DROP TABLE {connection.ops.quote_name(model._meta.db_table)} CASCADE")
    assert check(None, databases=["default"]) == []


@pytest.mark.django_db
def test_check_database_reports_a_product_model_changed_after_migrate(tmp_path):
    """`manage.py check --database default` of a project whose LOOKALIKE_PRODUCT_MODEL now
    names a model with an integer key, run on tables migrated for shop.Product (bigint)."""
    (tmp_path / "changed_settings.py").write_text(
        'from config.settings import *  # noqa: F403\nLOOKALIKE_PRODUCT_MODEL = "auth.Group"\n'
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "changed_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        "LOOKALIKE_DB_NAME": connection.settings_dict["NAME"],
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--database", "default"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output, output
    for table, check_id in [
        ("visualsearch_productembedding", "visualsearch.E014"),
        ("visualsearch_indexfailure", "visualsearch.E014"),
        ("recommendations_event", "recommendations.E003"),
        ("recommendations_impression", "recommendations.E003"),
    ]:
        assert (
            f"({check_id}) The table '{table}' of database 'default' keeps products in "
            "'product_id' as bigint, but the primary key of LOOKALIKE_PRODUCT_MODEL "
            "'auth.Group' needs integer" in output
        ), output


def test_rest_framework_missing_from_installed_apps_is_warned_about(settings):
    """Without it the API's browsable pages are a 500 (TemplateDoesNotExist
    rest_framework/api.html), and nothing else fails."""
    assert check_contrib_postgres(None) == []
    settings.INSTALLED_APPS = [app for app in settings.INSTALLED_APPS if app != "rest_framework"]
    [warning] = check_contrib_postgres(None)
    assert warning.id == "visualsearch.W004" and not warning.is_serious()
    assert "'rest_framework' is not in INSTALLED_APPS" in warning.msg
    assert "rest_framework/api.html" in warning.hint


@pytest.mark.parametrize(
    "value, hint",
    [
        ("Product", "Name the model with its app label, 'app_label.ModelName': did you mean "),
        ("Nope", "Name the model with its app label, 'app_label.ModelName', e.g. "),
        ("shop.Nope", None),
    ],
)
def test_a_product_model_without_its_app_label_is_told_the_expected_form(settings, value, hint):
    settings.LOOKALIKE_PRODUCT_MODEL = value
    [error] = [m for m in run_checks() if m.id == "lookalike.E003"]
    assert error.msg == (
        f"LOOKALIKE_PRODUCT_MODEL refers to {value!r}, which is not an installed model."
    )
    if hint is None:
        assert error.hint is None
    else:
        assert error.hint.startswith(hint)
    if value == "Product":
        assert error.hint.endswith("'shop.Product'?")


@pytest.mark.parametrize("value", ["oscar.Product", "catalogue.product"])
def test_a_product_model_under_another_app_label_is_told_the_installed_one(settings, value):
    """Oscar's product is catalogue.Product; a guess at its label names the model Django has."""
    settings.LOOKALIKE_PRODUCT_MODEL = value
    [error] = [m for m in run_checks() if m.id == "lookalike.E003"]
    assert (
        error.hint == "The model is installed with another app label: did you mean 'shop.Product'?"
    )


def test_an_adapter_that_does_not_import_gets_no_product_model_hint(settings):
    settings.LOOKALIKE_CATALOGUE_ADAPTER = "shop.adapters.Missing"
    [error] = [m for m in run_checks() if m.id == "lookalike.E003"]
    assert "LOOKALIKE_CATALOGUE_ADAPTER" in error.msg
    assert error.hint is None


def test_the_plugin_urls_left_out_of_the_urlconf_fail_check(settings, tmp_path, monkeypatch):
    """Every page linking to "Find similar" or "Search by photo" (Oscar's product page with
    lookalike.contrib.oscar) would be a 500: 'visualsearch' is not a registered namespace."""
    assert "urls" in check_urls.tags
    assert check_urls(None) == []  # the reference shop includes them
    (tmp_path / "urls_without_visualsearch.py").write_text("urlpatterns = []\n")
    monkeypatch.syspath_prepend(tmp_path)
    settings.ROOT_URLCONF = "urls_without_visualsearch"
    [error] = [m for m in run_checks() if m.id == "visualsearch.E015"]
    assert error.msg.startswith(
        "The URL namespace 'visualsearch' is not registered in ROOT_URLCONF "
        "'urls_without_visualsearch'"
    )
    assert error.hint.startswith('Add path("visual/", include("visualsearch.urls"))')
    # A URLconf that does not import is Django's own error (its URL checks raise it).
    settings.ROOT_URLCONF = "no_such_urlconf"
    assert check_urls(None) == []


@pytest.mark.parametrize(
    "setting, check_id",
    [
        ("VISUALSEARCH_ARTIFACT_DIR", "visualsearch.W003"),
        ("RECOMMENDATIONS_ARTIFACT_DIR", "recommendations.W002"),
    ],
)
def test_a_relative_artifact_dir_is_a_deployment_warning(settings, tmp_path, setting, check_id):
    """Each process would resolve it from its own working directory (docs/install.md,
    section 9), so a worker's files would not be where the web processes look."""

    def warnings(deploy=True):
        return [m for m in run_checks(include_deployment_checks=deploy) if m.id == check_id]

    assert warnings() == []  # the default, under VAR_DIR
    setattr(settings, setting, "var/models")
    [warning] = warnings()
    assert warning.msg.startswith(f"{setting} is the relative path 'var/models'")
    assert "absolute path" in warning.hint
    assert warnings(deploy=False) == []  # `check --deploy` only
    setattr(settings, setting, tmp_path / "models")
    assert warnings() == []
