from __future__ import annotations

from django.urls import path

from frontend import views, views_dashboard

app_name = "frontend"
urlpatterns = [
    path("", views.home, name="home"),
    path("campaigns/<int:campaign_id>/annotate/", views.annotate, name="annotate"),
    path("campaigns/<int:campaign_id>/validate/", views.validate, name="validate"),
    path(
        "manage/campaigns/<int:campaign_id>/dashboard/",
        views_dashboard.dashboard,
        name="manage-dashboard",
    ),
]
