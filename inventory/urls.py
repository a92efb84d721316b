from django.urls import path
from django.views.generic import RedirectView

from inventory import publishing_views, views

app_name = "inventory"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="inventory:skus"), name="home"),
    path("skus/", views.sku_list, name="skus"),
    path("skus/export/", views.sku_export, name="sku_export"),
    path("skus/import/", views.sku_import, name="sku_import"),
    path("skus/search/", views.sku_search, name="sku_search"),
    path("skus/<int:sku_id>/", views.sku_detail, name="sku_detail"),
    path("skus/<int:sku_id>/adjust/", views.sku_adjust, name="sku_adjust"),
    path("skus/<int:sku_id>/count/", views.sku_count, name="sku_count"),
    path("skus/<int:sku_id>/location/", views.sku_location, name="sku_location"),
    path("goods/<int:goods_id>/publish/", publishing_views.publish, name="goods_publish"),
    path("listings/unmatched/", views.unmatched, name="unmatched"),
    path("listings/<int:listing_id>/row/", views.listing_row, name="listing_row"),
    path("listings/<int:listing_id>/lock/", views.listing_lock, name="listing_lock"),
    path("listings/<int:listing_id>/push/", views.listing_push, name="listing_push"),
    path("listings/<int:listing_id>/match/", views.listing_match, name="listing_match"),
    path("sync/", views.sync_status, name="sync"),
    path("sync/retry-failed/", views.retry_failed, name="retry_failed"),
]
