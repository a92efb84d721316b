from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from channels import intake, selectors, tasks
from channels.models import InboxMessage, Store, SyncCursor
from tenants.accounts.permissions import has_capability


class SyncCursorSerializer(serializers.ModelSerializer):
    class Meta:
        model = SyncCursor
        fields = [
            "kind",
            "state",
            "watermark",
            "started_at",
            "finished_at",
            "windows_total",
            "windows_done",
            "items_seen",
            "last_error",
        ]


class StoreSerializer(serializers.ModelSerializer):
    cursors = SyncCursorSerializer(many=True, read_only=True)
    order_count = serializers.IntegerField(read_only=True)
    failed_messages = serializers.IntegerField(read_only=True)

    class Meta:
        model = Store
        fields = [
            "id",
            "platform",
            "platform_shop_id",
            "name",
            "auth_mode",
            "status",
            "last_error",
            "last_error_at",
            "access_expires_at",
            "refresh_expires_at",
            "connected_at",
            "settings",
            "cursors",
            "order_count",
            "failed_messages",
        ]
        read_only_fields = fields


class InboxMessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = InboxMessage
        fields = [
            "id",
            "platform",
            "message_id",
            "store",
            "topic",
            "payload",
            "status",
            "attempts",
            "last_error",
            "received_at",
            "processed_at",
        ]
        read_only_fields = fields


class StoreViewSet(viewsets.ReadOnlyModelViewSet):
    """Connected shops with their sync state. Tokens and secrets are never returned."""

    serializer_class = StoreSerializer
    filterset_fields = ["platform", "status"]
    write_capability = "shops.manage"

    def get_queryset(self):
        return selectors.stores_with_sync().order_by("-id")

    @extend_schema(request=None, responses={202: StoreSerializer})
    @action(detail=True, methods=["post"])
    def sync(self, request, pk=None):
        """Start an order pull now (asynchronous; poll the store for progress)."""
        store = self.get_object()
        transaction.on_commit(lambda: tasks.pull_store_orders.delay(store.pk))
        return Response(self.get_serializer(store).data, status=status.HTTP_202_ACCEPTED)


class InboxMessageViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Push messages received for this tenant; failed ones can be retried."""

    serializer_class = InboxMessageSerializer
    filterset_fields = ["platform", "status", "store"]
    write_capability = "shops.manage"

    def get_queryset(self):
        return selectors.inbox().order_by("-id")

    @extend_schema(request=None, responses={202: InboxMessageSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        message = self.get_object()
        if not has_capability(request.user, "shops.manage"):
            return Response(status=status.HTTP_403_FORBIDDEN)
        intake.retry_inbox_message(message_id=message.pk)
        message.refresh_from_db()
        return Response(self.get_serializer(message).data, status=status.HTTP_202_ACCEPTED)
