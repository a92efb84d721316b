"""Routing rules API: rule sets (list, one with its rules, a new draft, delete a draft, dry run,
activate, reorder) and the rules of a draft (CRUD).

Thin: writes through ``suppliers.rules``; a refusal is the standard error envelope (400,
code ``invalid``, zh-Hans reasons per field). Reads need dashboard.view, writes (and the dry
run, which is a POST) orders.manage. POSTs that make something or activate accept an
``Idempotency-Key`` (as the shipping API: a repeat gets the first answer again).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils.translation import gettext
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from ecbao import api
from inventory.api import ERROR_ENVELOPE
from logistics.api import IDEMPOTENCY_ERRORS, IDEMPOTENCY_PARAMETER, idempotent
from suppliers import routing, rules
from suppliers.models import RouteRule, RuleSet

_ERRORS = {
    400: OpenApiResponse(ERROR_ENVELOPE, description="Refused (code `invalid`, reasons in details)."),
    409: OpenApiResponse(
        ERROR_ENVELOPE,
        description="The rule set is not a draft (code `not_draft`), or the same Idempotency-Key is still "
        "running (`in_progress`).",
    ),
    422: IDEMPOTENCY_ERRORS[422],
}


class _NotDraftAs409:
    """A write to a rule set that is no longer a draft is a conflict with its state (409)."""

    def handle_exception(self, exc):
        if isinstance(exc, rules.NotDraft):
            return api.error_response(
                code="not_draft", message="；".join(exc.messages), http_status=status.HTTP_409_CONFLICT
            )
        return super().handle_exception(exc)


class RouteRuleSerializer(api.ModelSerializer):
    rule_set = serializers.PrimaryKeyRelatedField(
        queryset=RuleSet.objects.all(), help_text="The draft rule set this rule belongs to."
    )
    priority = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=1_000_000,
        help_text="Smaller first; absent: after the last rule.",
    )
    name = api.StrictCharField(min_length=1, max_length=60)
    conditions = serializers.JSONField(
        required=False,
        help_text="All must hold: stores, platforms, skus, goods (ids); brands, categories, provinces, cities, "
        "tags (words); amount_min_fen / amount_max_fen; hours [from, to) Asia/Shanghai; weekdays 1..7.",
    )
    supplier = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=api.MAX_BIGINT, source="supplier_id",
        help_text="For action `supplier`.",
    )  # fmt: skip
    warehouse = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=api.MAX_BIGINT, source="warehouse_id",
        help_text="An own warehouse, for action `warehouse`.",
    )  # fmt: skip
    description = serializers.SerializerMethodField()

    class Meta:
        model = RouteRule
        fields = ["id", "rule_set", "priority", "name", "enabled", "conditions", "action", "supplier", "warehouse", "description"]  # fmt: skip
        read_only_fields = ["id", "description"]
        validators: list = []  # suppliers.rules validates (a unique priority is its check)

    def get_description(self, rule) -> str:
        return routing.describe_conditions(rule.conditions or {})


class RuleSetSerializer(api.ModelSerializer):
    rules = serializers.SerializerMethodField()

    class Meta:
        model = RuleSet
        fields = ["id", "version", "status", "note", "created_at", "activated_at", "rules"]
        read_only_fields = fields

    @extend_schema_field(RouteRuleSerializer(many=True))
    def get_rules(self, rule_set) -> list[dict]:
        return RouteRuleSerializer(rule_set.rules.order_by("priority", "id"), many=True).data


class NewDraftSerializer(serializers.Serializer):
    note = api.StrictCharField(max_length=200, required=False, allow_blank=True)
    copy_from = serializers.PrimaryKeyRelatedField(
        queryset=RuleSet.objects.all(),
        required=False,
        help_text="Copy this set's rules (default: the active set).",
    )


class DryRunRequestSerializer(serializers.Serializer):
    days = serializers.IntegerField(min_value=1, max_value=rules.MAX_DRY_RUN_DAYS, default=7)
    only_moves = serializers.BooleanField(default=True, help_text="List only the lines that would move.")


class DryRunLineSerializer(serializers.Serializer):
    line = serializers.IntegerField(source="line_id")
    order = serializers.IntegerField(source="order_id")
    platform_order_id = serializers.CharField()
    merchant_code = serializers.CharField()
    quantity = serializers.IntegerField()
    current_warehouse = serializers.IntegerField(source="current_warehouse_id", allow_null=True)
    current_note = serializers.CharField()
    warehouse = serializers.IntegerField(source="warehouse_id", allow_null=True, help_text="Null: held.")
    note = serializers.CharField()
    rule = serializers.IntegerField(source="rule_id", allow_null=True)
    moves = serializers.BooleanField()


class DryRunMoveSerializer(serializers.Serializer):
    from_warehouse = serializers.IntegerField(source="from", allow_null=True)
    from_name = serializers.CharField()
    to_warehouse = serializers.IntegerField(source="to", allow_null=True, help_text="Null: held.")
    to_name = serializers.CharField()
    lines = serializers.IntegerField()


class DryRunSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    days = serializers.IntegerField()
    evaluated = serializers.IntegerField()
    moving = serializers.IntegerField()
    fixed = serializers.IntegerField(help_text="Lines already in a shipment: they keep their shipper.")
    truncated = serializers.BooleanField()
    summary = DryRunMoveSerializer(many=True)
    lines = DryRunLineSerializer(many=True)


class ReorderSerializer(serializers.Serializer):
    rule_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=api.MAX_BIGINT), max_length=rules.MAX_RULES,
        help_text="Every rule of the draft once, in the new order (priorities become 10, 20, 30 …).",
    )  # fmt: skip


@extend_schema_view(
    list=extend_schema(summary="Routing rule sets, newest version first"),
    retrieve=extend_schema(summary="One rule set with its rules"),
    create=extend_schema(
        request=NewDraftSerializer,
        responses={201: RuleSetSerializer, **_ERRORS},
        parameters=[IDEMPOTENCY_PARAMETER],
        summary="A new draft (a copy of the active rules, or of copy_from)",
    ),
    destroy=extend_schema(responses={204: None, **_ERRORS}, summary="Delete a draft"),
)
class RuleSetViewSet(
    _NotDraftAs409,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Versions of the routing (分流) rules: one ACTIVE, DRAFTs edited and dry-run, RETIRED ones kept."""

    serializer_class = RuleSetSerializer
    queryset = RuleSet.objects.order_by("-version")
    pagination_class = None
    filter_backends: list = []
    read_capability = "dashboard.view"
    write_capability = "orders.manage"

    def create(self, request, *args, **kwargs):
        def run():
            data = NewDraftSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            draft = rules.create_draft(
                user=request.user,
                note=data.validated_data.get("note", ""),
                copy_from=data.validated_data.get("copy_from"),
            )
            return Response(RuleSetSerializer(draft).data, status=status.HTTP_201_CREATED)

        return idempotent(request, run)

    def destroy(self, request, *args, **kwargs):
        rules.delete_draft(rule_set=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=DryRunRequestSerializer,
        responses={200: DryRunSerializer, **_ERRORS},
        summary="Dry run: what these rules would do to the last N days' lines that can still move",
    )
    @action(detail=True, methods=["post"], url_path="dry-run", filter_backends=[])
    def dry_run(self, request, pk=None):
        rule_set = self.get_object()
        params = DryRunRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        result = rules.dry_run(rule_set=rule_set, days=params.validated_data["days"])
        lines = [x for x in result.lines if x.moves or not params.validated_data["only_moves"]]
        payload = {
            "version": rule_set.version,
            "days": result.days,
            "evaluated": len(result.lines),
            "moving": result.moving,
            "fixed": result.fixed,
            "truncated": result.truncated,
            "summary": result.summary(),
            "lines": [dict(vars(x), moves=x.moves) for x in lines],
        }
        return Response(DryRunSerializer(payload).data)

    @extend_schema(
        request=None,
        responses={200: RuleSetSerializer, **_ERRORS},
        parameters=[IDEMPOTENCY_PARAMETER],
        summary="Activate a draft (the active set is retired; dispatched lines never move)",
    )
    @action(detail=True, methods=["post"], filter_backends=[])
    def activate(self, request, pk=None):
        rule_set = self.get_object()
        return idempotent(
            request,
            lambda: Response(RuleSetSerializer(rules.activate(rule_set=rule_set, user=request.user)).data),
        )

    @extend_schema(
        request=ReorderSerializer,
        responses={200: RuleSetSerializer, **_ERRORS},
        summary="Reorder a draft's rules",
    )
    @action(detail=True, methods=["post"], filter_backends=[])
    def reorder(self, request, pk=None):
        rule_set = self.get_object()
        data = ReorderSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        rules.reorder(rule_set=rule_set, rule_ids=data.validated_data["rule_ids"])
        rule_set.refresh_from_db()
        return Response(RuleSetSerializer(rule_set).data)


@extend_schema_view(
    list=extend_schema(summary="Routing rules (filter by rule_set)"),
    retrieve=extend_schema(summary="One routing rule"),
    create=extend_schema(
        responses={201: RouteRuleSerializer, **_ERRORS},
        parameters=[IDEMPOTENCY_PARAMETER],
        summary="Add a rule to a draft",
    ),
    update=extend_schema(responses={200: RouteRuleSerializer, **_ERRORS}, summary="Change a rule of a draft"),
    partial_update=extend_schema(
        responses={200: RouteRuleSerializer, **_ERRORS}, summary="Change a rule of a draft"
    ),
    destroy=extend_schema(responses={204: None, **_ERRORS}, summary="Delete a rule of a draft"),
)
class RouteRuleViewSet(_NotDraftAs409, viewsets.ModelViewSet):
    """The rules of rule sets; only a DRAFT's rules can be written."""

    serializer_class = RouteRuleSerializer
    pagination_class = None
    filter_backends: list = []
    read_capability = "dashboard.view"
    write_capability = "orders.manage"
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def get_queryset(self):
        qs = RouteRule.objects.order_by("rule_set_id", "priority", "id")
        raw = self.request.query_params.get("rule_set", "")
        if self.action == "list" and raw:
            qs = qs.filter(rule_set_id=int(raw)) if raw.isdigit() and len(raw) < 19 else qs.none()
        return qs

    @staticmethod
    def _fields(data: dict) -> dict:
        out = {k: data[k] for k in ("name", "action", "conditions", "priority", "enabled") if k in data}
        if "supplier_id" in data:
            out["supplier"] = data["supplier_id"]
        if "warehouse_id" in data:
            out["warehouse"] = data["warehouse_id"]
        return out

    def create(self, request, *args, **kwargs):
        def run():
            serializer = self.get_serializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
            fields = self._fields(data)
            fields.setdefault("conditions", {})
            rule = rules.add_rule(rule_set=data["rule_set"], **fields)
            return Response(self.get_serializer(rule).data, status=status.HTTP_201_CREATED)

        return idempotent(request, run)

    def update(self, request, *args, **kwargs):
        rule = self.get_object()
        serializer = self.get_serializer(rule, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if "rule_set" in data and data["rule_set"].pk != rule.rule_set_id:
            raise ValidationError({"rule_set": gettext("a rule cannot move to another rule set")})
        rule = rules.update_rule(rule=rule, **self._fields(data))
        return Response(self.get_serializer(rule).data)

    def destroy(self, request, *args, **kwargs):
        rules.delete_rule(rule=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
