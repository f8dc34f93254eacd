"""HTML pages of the web shell."""

from django.urls import URLPattern, URLResolver, include, path

from advisor import views

urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.home, name="home"),
    path("home/audit-chain/", views.home_chain_status, name="home_chain_status"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("firm/choose/", views.firm_choose, name="firm_choose"),
    path("firm/switch/", views.firm_switch, name="firm_switch"),
    path("", include("accounts.urls")),
    path("", include("accounts.notifications.urls")),
    path("", include("portfolios.web_urls")),
    path("", include("compliance.web_urls")),
]
