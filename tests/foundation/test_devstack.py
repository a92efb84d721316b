"""The development stack's embedded Redis: each data folder gets its own server."""

from __future__ import annotations

from ecbao.devstack import EmbeddedRedis


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def test_a_stale_port_file_never_joins_another_checkouts_redis(tmp_path):
    first = EmbeddedRedis(tmp_path / "first")
    second = EmbeddedRedis(tmp_path / "second")
    first_port = _port(first.start())
    try:
        # The second folder's server stopped earlier and the first one has since taken its port.
        (tmp_path / "second").mkdir()
        second.portfile.write_text(str(first_port))
        second_port = _port(second.start())
        try:
            assert second_port != first_port
            assert second._ours(second_port) and not second._ours(first_port)
        finally:
            second.stop()
        assert first._ours(first_port)  # the first folder's server was left alone
    finally:
        first.stop()
