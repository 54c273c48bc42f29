from __future__ import annotations

from django.urls import path

from frontend import views, views_exports, views_pairs

app_name = "frontend"
urlpatterns = [
    path("", views.home, name="home"),
    path("campaigns/<int:campaign_id>/annotate/", views.annotate, name="annotate"),
    path("campaigns/<int:campaign_id>/validate/", views.validate, name="validate"),
    path(
        "manage/campaigns/<int:campaign_id>/exports/",
        views_exports.exports,
        name="manage-exports",
    ),
    path("manage/campaigns/<int:campaign_id>/pairs/", views_pairs.pairs, name="manage-pairs"),
    path(
        "manage/campaigns/<int:campaign_id>/pairs/<int:edit_id>/",
        views_pairs.pairs,
        name="manage-pair",
    ),
]
