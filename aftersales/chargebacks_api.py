"""Supplier charge-backs in the merchant API: /api/v1/charge-backs/ (capability
``aftersales.manage``): list (filters supplier, status, after_sale), one, create from an
after-sale on a supplier's dispatch (amount in fen; default the supplier's cost of the refunded
lines), cancel an open one. Every POST honours an ``Idempotency-Key``."""

from __future__ import annotations

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema, extend_schema_serializer, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from aftersales import chargebacks
from aftersales.models import AfterSale, ChargeBack
from ecbao import api
from ecbao.api import error_response
from logistics.api import IDEMPOTENCY_ERRORS, IDEMPOTENCY_PARAMETER, REFUSED, StrictIntegerField, idempotent

CAPABILITY = "aftersales.manage"


@extend_schema_serializer(component_name="ChargeBack")
class ChargeBackSerializer(serializers.ModelSerializer):
    supplier_name = serializers.CharField(source="supplier.name", read_only=True)
    platform_after_sale_id = serializers.CharField(source="after_sale.platform_after_sale_id", read_only=True)
    platform_order_id = serializers.CharField(source="after_sale.platform_order_id", read_only=True)
    status = serializers.ChoiceField(choices=ChargeBack.Status.choices, read_only=True)
    reason = serializers.ChoiceField(choices=ChargeBack.Reason.choices, read_only=True)

    class Meta:
        model = ChargeBack
        fields = [
            "id",
            "supplier",
            "supplier_name",
            "after_sale",
            "platform_after_sale_id",
            "platform_order_id",
            "dispatch",
            "amount_fen",
            "reason",
            "note",
            "status",
            "statement_ref",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


@extend_schema_serializer(component_name="ChargeBackCreate")
class ChargeBackCreateSerializer(serializers.Serializer):
    after_sale = StrictIntegerField(min_value=1, max_value=api.MAX_BIGINT)
    amount_fen = StrictIntegerField(
        min_value=1,
        max_value=10**12,
        required=False,
        help_text="Fen; default: the supplier's cost of the refunded lines (at most the refund).",
    )
    reason = serializers.ChoiceField(choices=ChargeBack.Reason.choices)
    note = api.StrictCharField(max_length=300, required=False, allow_blank=True, default="")


class ChargeBackFilterSet(api.FilterSet):
    supplier = api.IdFilter()
    after_sale = api.IdFilter()
    status = django_filters.ChoiceFilter(choices=ChargeBack.Status.choices)

    class Meta:
        model = ChargeBack
        fields: list[str] = []


@extend_schema_view(
    list=extend_schema(
        summary="Supplier charge-backs (扣款), newest first (filters supplier, status, after_sale)"
    ),
    retrieve=extend_schema(summary="One charge-back"),
)
class ChargeBackViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Refunds the supplier caused, charged back to it (finance puts open ones on its statement)."""

    read_capability = CAPABILITY
    write_capability = CAPABILITY
    serializer_class = ChargeBackSerializer
    filterset_class = ChargeBackFilterSet
    pagination_class = api.KeysetPagination
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return ChargeBack.objects.select_related("supplier", "after_sale")

    def get_object(self):
        pk = self.kwargs.get("pk", "")
        if not str(pk).isdigit() or int(pk) > api.MAX_BIGINT:
            raise NotFound()
        return super().get_object()

    @extend_schema(
        request=ChargeBackCreateSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: ChargeBackSerializer, 400: REFUSED, **IDEMPOTENCY_ERRORS},
        summary="Charge an after-sale's refund back to the supplier (one live charge-back per after-sale)",
    )
    def create(self, request):
        def run():
            serializer = ChargeBackCreateSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
            after_sale = AfterSale.objects.filter(pk=data["after_sale"]).first()
            if after_sale is None:
                return error_response(code="invalid", message="no such after-sale")
            amount = data.get("amount_fen")
            if amount is None:
                amount = chargebacks.default_amount(after_sale)
            try:
                made = chargebacks.create(
                    after_sale,
                    amount_fen=amount,
                    reason=data["reason"],
                    note=data["note"],
                    actor=request.user,
                )
            except DjangoValidationError as exc:
                return error_response(code="invalid", message=" ".join(exc.messages))
            return Response(ChargeBackSerializer(made).data, status=status.HTTP_201_CREATED)

        return idempotent(request, run)

    @extend_schema(
        request=None,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: ChargeBackSerializer, 400: REFUSED, **IDEMPOTENCY_ERRORS},
        summary="Cancel an open charge-back",
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        def run():
            found = self.get_object()
            try:
                done = chargebacks.cancel(found, actor=request.user)
            except DjangoValidationError as exc:
                return error_response(code="invalid", message=" ".join(exc.messages))
            return Response(ChargeBackSerializer(self.get_queryset().get(pk=done.pk)).data)

        return idempotent(request, run)
