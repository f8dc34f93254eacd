from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("advisor.api.urls")),
    path("", include("advisor.web_urls")),
]
