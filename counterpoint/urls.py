from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authtoken.views import obtain_auth_token

from annotation.api.media import media_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/v1/auth/token/", obtain_auth_token, name="api-token"),
    path("api/v1/", include("annotation.api.urls")),
    path("api/v1/", include("models_bridge.api.urls")),
    path("media/<str:sha256>", media_view, name="media"),
    path("", include("frontend.urls")),
]

# Under /api/, a request Django refuses before any view (a body over
# DATA_UPLOAD_MAX_MEMORY_SIZE) answers in the API's error shape.
handler400 = "counterpoint.errors.bad_request"
