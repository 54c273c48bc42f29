from __future__ import annotations

from django.urls import path

from frontend import views, views_setup

app_name = "frontend"
urlpatterns = [
    path("", views.home, name="home"),
    path("campaigns/<int:campaign_id>/annotate/", views.annotate, name="annotate"),
    path("campaigns/<int:campaign_id>/validate/", views.validate, name="validate"),
    # Manager console: campaign setup (frontend/views_setup.py).
    path("manage/", views_setup.manage_list, name="manage-list"),
    path("manage/campaigns/new/", views_setup.campaign_new, name="manage-new"),
    path(
        "manage/campaigns/<int:campaign_id>/", views_setup.campaign_settings, name="manage-settings"
    ),
    path("manage/campaigns/<int:campaign_id>/pool/", views_setup.campaign_pool, name="manage-pool"),
    path(
        "manage/campaigns/<int:campaign_id>/preview/",
        views_setup.campaign_preview,
        name="manage-preview",
    ),
]
