"""Every change list of the plugins (and the reference shop's) answers a filter value it
cannot query with Django's "?e=1" redirect, not a 500."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

CHANGE_LISTS = [
    ("lookalike_jobs", "job"),
    ("visualsearch", "indexjob"),
    ("visualsearch", "indexfailure"),
    ("recommendations", "event"),
    ("recommendations", "recommendermodel"),
    ("recommendations", "blendprofile"),
    ("recommendations", "experiment"),
    ("shop", "product"),
    ("shop", "category"),
]

BAD_FILTERS = [
    "created_at__year=99999",  # a year past 9999
    "created_at__year=0",
    "created_at__month=13",
    "created_at__day=1" + "0" * 30,  # past a C integer
    "status__exact=%00",  # PostgreSQL refuses NUL in text
    "kind=a%00b",
    "name__startswith=%00",
]


@pytest.mark.parametrize(("app", "model"), CHANGE_LISTS)
def test_an_unqueryable_filter_is_the_unfiltered_list_with_a_note(admin_client, app, model):
    url = reverse(f"admin:{app}_{model}_changelist")
    assert admin_client.get(url).status_code == 200
    for query in BAD_FILTERS:
        response = admin_client.get(f"{url}?{query}")
        assert response.status_code == 302, query
        assert response["Location"] == f"{url}?e=1"
    assert admin_client.get(f"{url}?e=1").status_code == 200


def test_a_value_the_database_refuses_is_caught_where_the_list_is_run(admin_client, monkeypatch):
    """A value no check foresaw, refused by the database when the list runs its query."""
    from django.contrib.admin.views.main import ChangeList
    from django.db import DataError

    url = reverse("admin:recommendations_blendprofile_changelist")

    def refused(self, request):
        raise DataError("value out of range")

    monkeypatch.setattr(ChangeList, "get_results", refused)
    response = admin_client.get(f"{url}?name=x")
    assert response.status_code == 302 and response["Location"] == f"{url}?e=1"
    # The unfiltered list failing too is Django's own "Database error" page, not a loop.
    response = admin_client.get(f"{url}?e=1")
    assert response.status_code == 200 and b"Database error" in response.content
