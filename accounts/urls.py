"""HTML pages of the accounts app: the client book and risk profiling (namespace accounts)."""

from django.urls import URLPattern, URLResolver, path

from accounts import views

app_name = "accounts"

urlpatterns: list[URLPattern | URLResolver] = [
    path("risk-profile/", views.risk_profile, name="risk_profile"),
    path("risk-profile/questionnaire/", views.questionnaire, name="questionnaire"),
    path("clients/", views.client_list, name="client_list"),
    path("clients/new/", views.client_new, name="client_new"),
    path("clients/<int:pk>/", views.client_detail, name="client_detail"),
    path("clients/<int:pk>/portfolios/", views.portfolio_new, name="portfolio_new"),
    path("clients/<int:pk>/advisors/", views.household_advisors_set, name="household_advisors"),
    path(
        "clients/<int:pk>/flags/<int:flag_id>/resolve/",
        views.flag_resolve,
        name="flag_resolve",
    ),
    path("clients/<int:pk>/invite/", views.client_invite, name="client_invite"),
    path("clients/<int:pk>/strategy/", views.strategy_set, name="strategy_set"),
    path(
        "clients/<int:pk>/assignments/<int:assignment_id>/decide/",
        views.assignment_decide,
        name="assignment_decide",
    ),
    path("strategy-approvals/", views.approval_list, name="approval_list"),
    path("firm/questionnaires/", views.questionnaire_list, name="questionnaire_list"),
    path("firm/questionnaires/<int:pk>/", views.questionnaire_edit, name="questionnaire_edit"),
    path("firm/strategy-mapping/", views.strategy_mapping, name="strategy_mapping"),
    path(
        "invitations/<slug:firm_slug>/<str:token>/",
        views.invitation_signup,
        name="invitation_signup",
    ),
]
