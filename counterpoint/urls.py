from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from annotation.api.auth import TokenObtainView, TokenRevokeView
from annotation.api.media import media_view
from frontend.views import LoginView, LogoutView

urlpatterns = [
    # One sign-in page, the throttled one (the admin's own would be a way around the limit),
    # and one sign-out, the one that also revokes the API token.
    path("admin/login/", RedirectView.as_view(url="/accounts/login/", query_string=True)),
    path("admin/logout/", LogoutView.as_view()),
    path("admin/", admin.site.urls),
    # Before Django's own: sign-in is throttled and signing out revokes the API token.
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/logout/", LogoutView.as_view(), name="logout"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/v1/auth/token/", TokenObtainView.as_view(), name="api-token"),
    path("api/v1/auth/token/revoke/", TokenRevokeView.as_view(), name="api-token-revoke"),
    path("api/v1/", include("annotation.api.urls")),
    path("api/v1/", include("models_bridge.api.urls")),
    path("media/<str:sha256>", media_view, name="media"),
    path("", include("frontend.urls")),
]

# Under /api/, a request Django refuses before any view (a body over
# DATA_UPLOAD_MAX_MEMORY_SIZE) answers in the API's error shape.
handler400 = "counterpoint.errors.bad_request"
