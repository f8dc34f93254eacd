"""API routes: /api/v1/... plus /api/schema/ and /api/docs/ (completed by the API shell)."""

from django.urls import URLPattern, URLResolver

urlpatterns: list[URLPattern | URLResolver] = []
