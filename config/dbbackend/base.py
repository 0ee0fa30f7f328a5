"""PostgreSQL backend that starts the embedded server on the first connection.

Starting the server lazily, here rather than in settings, keeps ``manage.py check``
and imports of the settings module free of side effects until a query is made.
"""

from django.db.backends.postgresql import base

EMBEDDED_DATABASE = "lookalike"


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self):
        from config.embedded import ensure_server

        params = super().get_connection_params()
        # The project database is created here on first start; a test database is
        # created by Django itself from the server's maintenance database.
        params["host"] = str(ensure_server(EMBEDDED_DATABASE))
        params.setdefault("user", "postgres")
        return params
