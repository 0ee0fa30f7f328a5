"""PostgreSQL backend that starts the embedded server on the first connection.

Starting the server lazily, here rather than in settings, keeps ``manage.py check``
and imports of the settings module free of side effects until a query is made.
"""

import os

from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self):
        from config.embedded import ensure_server

        params = super().get_connection_params()
        # The project database is created here on first start; a test database is
        # created by Django itself from the server's maintenance database.
        params["host"] = str(ensure_server(os.environ.get("LOOKALIKE_DB_NAME", "lookalike")))
        params.setdefault("user", "postgres")
        return params
