"""URLs served on a tenant's domain (<slug>.<base domain>)."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from aftersales import api as aftersales_api
from channels import api as channels_api
from ecbao import views
from inventory import api as inventory_api
from logistics import api as logistics_api
from orders import api as orders_api
from suppliers import api as suppliers_api
from suppliers import api_dispatch as dispatch_api
from suppliers import api_rules as suppliers_rules_api
from tenants.accounts import api as accounts_api
from tenants.accounts.permissions import TenantStaffAPIPermission

router = DefaultRouter()
router.register("users", accounts_api.UserViewSet, basename="user")
router.register("invitations", accounts_api.InvitationViewSet, basename="invitation")
router.register("stores", channels_api.StoreViewSet, basename="store")
router.register("inbox", channels_api.InboxMessageViewSet, basename="inbox-message")
router.register("skus", inventory_api.SkuViewSet, basename="sku")
router.register("stock-levels", inventory_api.StockLevelViewSet, basename="stock-level")
router.register("ledger", inventory_api.LedgerViewSet, basename="ledger-entry")
router.register("adjustments", inventory_api.AdjustmentViewSet, basename="adjustment")
router.register("listings", inventory_api.ListingViewSet, basename="listing")
router.register("orders", orders_api.OrderViewSet, basename="order")
router.register("review-rules", orders_api.ReviewRuleViewSet, basename="review-rule")
router.register("parcels", logistics_api.ParcelViewSet, basename="parcel")
router.register("waybills", logistics_api.WaybillViewSet, basename="waybill")
router.register("labels", logistics_api.LabelViewSet, basename="label")
router.register("shipments", logistics_api.ShipmentViewSet, basename="shipment")
router.register("shipping-batches", logistics_api.ShipBatchViewSet, basename="shipping-batch")
router.register("write-backs", logistics_api.WriteBackViewSet, basename="write-back")
router.register("carrier-rules", logistics_api.CarrierRuleViewSet, basename="carrier-rule")
router.register("rule-sets", suppliers_rules_api.RuleSetViewSet, basename="rule-set")
router.register("route-rules", suppliers_rules_api.RouteRuleViewSet, basename="route-rule")
router.register("suppliers", suppliers_api.SupplierViewSet, basename="supplier")
router.register("supplier-skus", suppliers_api.SupplierSkuViewSet, basename="supplier-sku")
router.register("supplier-stock", suppliers_api.SupplierStockViewSet, basename="supplier-stock")
router.register("dispatches", dispatch_api.DispatchViewSet, basename="dispatch")
aftersales_api.register(router)

dashboard_patterns = ([path("", views.root, name="home")], "dashboard")

urlpatterns = [
    path("", include(dashboard_patterns)),
    path("accounts/", include("tenants.accounts.urls")),
    path("shops/", include("channels.urls")),
    path("inventory/", include("inventory.urls")),
    path("orders/", include("orders.urls")),
    path("shipping/", include("logistics.urls")),
    path("suppliers/", include("suppliers.urls")),
    path("aftersales/", include("aftersales.urls")),
    path("supplier/aftersales/", include("aftersales.portal.urls")),
    path("supplier/", include("suppliers.portal.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("healthz", views.healthz, name="healthz"),
    path("api/v1/me/", accounts_api.me, name="api-me"),
    path("api/v1/auth/token/", accounts_api.obtain_token, name="api-token"),
    path("api/v1/supplier/after-sales/", include("aftersales.portal.api")),
    path("api/v1/supplier/", include("suppliers.portal.api")),  # the supplier API (suppliers.portal)
    path("api/v1/", include(router.urls)),
    # The schema and its docs are for this tenant's staff (token or session), not for anyone.
    path(
        "api/schema/",
        SpectacularAPIView.as_view(permission_classes=[TenantStaffAPIPermission]),
        name="api-schema",
    ),
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="api-schema", permission_classes=[TenantStaffAPIPermission]
        ),
        name="api-docs",
    ),
]

handler400 = "ecbao.views.bad_request"
handler403 = "ecbao.views.permission_denied"
handler404 = "ecbao.views.page_not_found"
handler500 = "ecbao.views.server_error"
