"""Which requests the replica middleware sends to the primary (the rest of the routing is
tested against a real standby in ``tests/replicas``)."""

import pytest
from django.test import RequestFactory

from lookalike import routing


@pytest.mark.parametrize(
    ("method", "path", "primary"),
    [
        ("GET", "/admin/visualsearch/indexjob/", True),
        ("GET", "/en/admin/visualsearch/indexjob/", True),  # under i18n_patterns
        ("GET", "/en/", False),
        ("GET", "/english/admin/", False),  # not a language prefix
        ("GET", "/p/1/", False),
        ("HEAD", "/p/1/", False),
        ("POST", "/p/1/", True),
    ],
)
def test_writes_and_the_admin_read_the_primary(method, path, primary, settings):
    settings.LANGUAGES = [("en", "English"), ("de", "German")]
    seen = []
    middleware = routing.PrimaryDatabaseMiddleware(
        lambda request: seen.append(routing._next.primary)
    )
    middleware(RequestFactory().generic(method, path))
    # A shop served below a prefix (SCRIPT_NAME=/shop): the same, read below it.
    middleware(RequestFactory(SCRIPT_NAME="/shop").generic(method, path))
    assert seen == [primary, primary]
