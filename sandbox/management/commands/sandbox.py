"""python manage.py sandbox [serve|reset|status|fault|push|configure|sign|loadtest] ...

Runs the platform sandbox (sandbox) — the same CLI as ``python -m sandbox``;
see sandbox/README.md.
"""

from django.core.management.base import BaseCommand

from sandbox.__main__ import main


class Command(BaseCommand):
    help = "Serve or control the platform sandbox (Douyin, Kuaishou, WeChat imitation)."

    def add_arguments(self, parser):
        parser.add_argument("args", nargs="*")

    def run_from_argv(self, argv):
        # Hand everything after "sandbox" to the sandbox's own argument parser.
        raise SystemExit(main(argv[2:]))

    def handle(self, *args, **options):
        raise SystemExit(main(list(args)))
