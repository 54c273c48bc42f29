from __future__ import annotations

from django.urls import path

from frontend import (
    views,
    views_analyses,
    views_dashboard,
    views_exports,
    views_pairs,
    views_people,
    views_perturb,
    views_setup,
)

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
    path(
        "manage/campaigns/<int:campaign_id>/analyses/",
        views_analyses.analyses,
        name="manage-analyses",
    ),
    path(
        "manage/campaigns/<int:campaign_id>/analyses/<int:job_id>/",
        views_analyses.analysis_report,
        name="manage-analysis",
    ),
    path(
        "manage/campaigns/<int:campaign_id>/analyses/<int:job_id>/<str:method>.<str:fmt>",
        views_analyses.analysis_download,
        name="manage-analysis-download",
    ),
    path("manage/campaigns/<int:campaign_id>/pairs/", views_pairs.pairs, name="manage-pairs"),
    path(
        "manage/campaigns/<int:campaign_id>/perturbation/",
        views_perturb.perturbation,
        name="manage-perturbation",
    ),
    path(
        "manage/campaigns/<int:campaign_id>/perturbation/<int:study_id>/",
        views_perturb.perturbation_study,
        name="manage-perturbation-study",
    ),
    path(
        "campaigns/<int:campaign_id>/perturbation/<int:study_id>/",
        views_perturb.perturbation_task,
        name="perturbation-task",
    ),
    path(
        "manage/campaigns/<int:campaign_id>/pairs/<int:edit_id>/",
        views_pairs.pairs,
        name="manage-pair",
    ),
    path("manage/campaigns/<int:campaign_id>/people/", views_people.people, name="people"),
    path("signup/<str:token>/", views_people.signup, name="signup"),
    path("crowd/<int:link_id>/<str:token>/", views_people.crowd_entry, name="crowd-entry"),
    path("crowd/finish/<int:campaign_id>/", views_people.crowd_finish_page, name="crowd-finish"),
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
    path(
        "manage/campaigns/<int:campaign_id>/dashboard/",
        views_dashboard.dashboard,
        name="manage-dashboard",
    ),
]
