"""django-tenants' PostgreSQL backend, with connection failures that name DATABASE_URL.

An unreachable database otherwise surfaces as a psycopg traceback; operators need one line
saying which setting to fix.
"""

from django.db.utils import OperationalError
from django_tenants.postgresql_backend.base import DatabaseWrapper as TenantDatabaseWrapper


class DatabaseWrapper(TenantDatabaseWrapper):
    def get_new_connection(self, conn_params):
        try:
            return super().get_new_connection(conn_params)
        except Exception as exc:
            where = conn_params.get("host") or "local socket"
            port = conn_params.get("port") or 5432
            db = conn_params.get("dbname") or conn_params.get("database")
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise OperationalError(
                f"DATABASE_URL: cannot connect to PostgreSQL at {where}:{port} database {db!r}: {reason}"
            ) from exc
