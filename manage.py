#!/usr/bin/env python
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ecbao.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line
    from django.db.utils import OperationalError

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"ecbao: configuration error: {exc}\n")
        sys.exit(2)
    except OperationalError as exc:
        if not str(exc).startswith("DATABASE_URL:"):
            raise
        sys.stderr.write(f"ecbao: {exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
