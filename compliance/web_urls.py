"""HTML pages of the compliance console, under the ``compliance`` namespace."""

from django.urls import URLPattern, URLResolver, path

from compliance import views

app_name = "compliance"

urlpatterns: list[URLPattern | URLResolver] = [
    path("compliance/audit/", views.audit_list, name="audit_list"),
    path("compliance/audit/export.csv", views.audit_export, name="audit_export"),
    path("compliance/audit/<int:pk>/", views.audit_detail, name="audit_detail"),
    path("compliance/audit-chain/", views.chain_status, name="chain_status"),
    path("compliance/audit-chain/verify/", views.chain_verify, name="chain_verify"),
    path("compliance/reports/", views.exception_report_page, name="exception_report"),
    path(
        "compliance/reports/export.csv",
        views.exception_report_csv,
        name="exception_report_csv",
    ),
]
