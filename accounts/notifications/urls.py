"""Pages of notifications (namespace notifications)."""

from django.urls import URLPattern, URLResolver, path

from accounts.notifications import views

app_name = "notifications"

urlpatterns: list[URLPattern | URLResolver] = [
    path("notifications/", views.inbox, name="inbox"),
    path("notifications/badge/", views.badge, name="badge"),
    path("notifications/preferences/", views.preferences, name="preferences"),
    path("notifications/<int:pk>/", views.detail, name="detail"),
    path("notifications/<int:pk>/archive/", views.archive, name="archive"),
    path("firm/notifications/failed/", views.failed, name="failed"),
]
