"""HTML pages of the compliance console, under the ``compliance`` namespace."""

from django.urls import URLPattern, URLResolver, path

from compliance import views, views_review

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
    path("compliance/review/", views_review.review_queue_page, name="review_queue"),
    path(
        "compliance/review/<int:pk>/decide/",
        views_review.review_decide,
        name="review_decide",
    ),
    path("compliance/orders/<int:pk>/why/", views_review.order_explain_page, name="order_explain"),
    path("compliance/rules/", views_review.rule_list, name="rule_list"),
    path("compliance/rules/new/", views_review.rule_new, name="rule_new"),
    path("compliance/rules/<int:pk>/", views_review.rule_detail, name="rule_detail"),
]
