"""The ecbao platform sandbox: local imitations of Douyin shop, Kuaishou shop and WeChat
Channels shop (paths, signing, envelopes, pagination, errors, rate limits, pushes), with
simulated shops whose buyers place orders.

Pure Python: no Django, no ORM. Layout:

* ``world.py``     – the platform-neutral world in one SQLite file (``model.py`` records)
* ``seed.py``      – realistic default data; ``simulator.py`` – buyers and platform timers
* ``http.py``      – tiny WSGI toolkit; ``gateway.py`` – the shared request pipeline
* ``faults.py``    – faults on demand and rate limits; ``pushes.py`` – webhook outbox dispatcher
* ``pii.py``       – masking, ciphertexts, search indexes
* ``douyin.py``    – Douyin (``kuaishou.py`` / ``wechat.py`` follow the same pattern)
* ``server.py``    – waitress servers + status page; ``__main__.py`` – the command line

See README.md in this directory.
"""

from __future__ import annotations

from typing import Any


def main(argv: list[str] | None = None) -> int:
    """Run the command line (``python -m sandbox ...``) with ``argv``."""
    from .__main__ import main as _main

    return _main(argv)


def serve(data: str = ".data/sandbox.sqlite3", **kwargs: Any) -> Any:
    """Start the sandbox servers (see ``server.serve``)."""
    from .server import serve as _serve

    return _serve(data, **kwargs)
