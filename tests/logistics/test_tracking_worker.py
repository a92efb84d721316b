"""The tracking beat task through a real Celery worker: sent for one tenant, it pulls that tenant's
due parcels from the sandbox over HTTP and touches nothing in another tenant's schema (committed
data: the worker thread has its own connection)."""

from __future__ import annotations

from django.db import connection
from django_tenants.utils import schema_context

from channels.routing.models import PlatformApp, ShopRoute
from logistics.models import Parcel
from logistics.tasks import pull_tracking_due
from sandbox import traces
from tests.e2e.conftest import committed_tenant, db  # noqa: F401 - committed data for the worker
from tests.e2e.test_channel_sync import register_tool_apps
from tests.logistics.test_tracking import PLATFORMS, TRIP, server, shipped_parcel  # noqa: F401 - the sandbox


def test_the_beat_task_pulls_one_tenant_only(server, settings, committed_tenant, tenant_worker):  # noqa: F811
    settings.CHANNEL_BASE_URLS = {p: server.urls[p] for p in PLATFORMS}
    try:
        world = server.world
        connection.set_schema_to_public()
        register_tool_apps(world)
        one, other = committed_tenant("trk-one"), committed_tenant("trk-two")
        parcels = {}
        for tenant, platform in ((one, "douyin"), (other, "wechat")):
            with schema_context(tenant.schema_name):
                parcels[tenant.slug] = shipped_parcel(world, platform)
        traces.fast_forward(world, TRIP, [p.tracking_no for p in parcels.values()])

        with schema_context(one.schema_name):
            result = pull_tracking_due.delay().get(timeout=60)
        assert (result["pulled"], result["failed"], result["events"]) == (1, 0, 6)
        with schema_context(one.schema_name):
            mine = Parcel.objects.get(pk=parcels["trk-one"].pk)
            assert mine.tracking_status == Parcel.Tracking.DELIVERED and mine.events.count() == 6
            assert mine.tracking_pulled_at is not None
        with schema_context(other.schema_name):
            theirs = Parcel.objects.get(pk=parcels["trk-two"].pk)
            assert (theirs.tracking_status, theirs.tracking_pulled_at, theirs.events.count()) == ("", None, 0)
        # run again for the first tenant: nothing due, nothing new
        with schema_context(one.schema_name):
            assert pull_tracking_due.delay().get(timeout=60)["pulled"] == 0
        with schema_context(other.schema_name):
            assert pull_tracking_due.delay().get(timeout=60)["events"] == 6
    finally:  # the public schema's apps and routes: committed, so removed by hand
        connection.set_schema_to_public()
        app_keys = [a.app_key for a in server.world.apps()]
        ShopRoute.objects.filter(app_key__in=app_keys).delete()
        PlatformApp.objects.filter(app_key__in=app_keys).delete()
