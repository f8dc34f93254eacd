"""API of the client book: households (and their advisors), clients, invitations, portfolios.

Thin views: validate input, call one service or selector, serialise. What a caller sees
comes from :mod:`accounts.book_selectors`; another advisor's household, like another
firm's, answers 404 exactly like a missing one.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import Q, QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.mixins import ListModelMixin
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle

from accounts.book_selectors import (
    client_can_change,
    client_list_visible,
    household_advisors,
    household_can_change,
    household_list_visible,
    portfolio_list_visible,
)
from accounts.book_services import (
    client_create,
    client_update,
    household_advisor_assign,
    household_advisor_unassign,
    household_create,
    household_update,
    invitation_accept,
    invitation_create,
    portfolio_open,
    portfolio_update,
)
from accounts.models import (
    Client,
    Employment,
    Household,
    KycStatus,
    Membership,
    Role,
    TaxStatus,
    User,
)
from accounts.selectors import firm_get_by_slug
from accounts.web import signed_in_user
from advisor.api.permissions import ALL_ROLES, HasRole
from advisor.api.serializers import StrictInputSerializer
from advisor.api.views import FirmScopedAPIView, FirmScopedGenericAPIView, PublicApiView
from portfolios.models import Portfolio, PortfolioStatus, PortfolioType

BOOK_WRITERS = (Role.FIRM_ADMIN, Role.ADVISOR)

# --- serializers -------------------------------------------------------------------------


class AdvisorBriefSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = User
        fields = ["id", "username", "first_name", "last_name"]


class HouseholdSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = Household
        fields = ["id", "name", "notes", "created_at"]


class HouseholdDetailSerializer(HouseholdSerializer):
    advisors = serializers.SerializerMethodField()

    class Meta(HouseholdSerializer.Meta):
        fields = [*HouseholdSerializer.Meta.fields, "advisors"]

    @extend_schema_field(AdvisorBriefSerializer(many=True))
    def get_advisors(self, household: Household) -> list[dict[str, Any]]:
        return list(AdvisorBriefSerializer(household_advisors(household=household), many=True).data)


class HouseholdInputSerializer(StrictInputSerializer):
    """A household to create, or the fields of one to change."""

    name = serializers.CharField(max_length=200)
    notes = serializers.CharField(max_length=5000, required=False, allow_blank=True)


class HouseholdAdvisorsInputSerializer(StrictInputSerializer):
    """The complete list of advisors assigned to the household."""

    advisor_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), max_length=50, allow_empty=True
    )


class ClientSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    household_id = serializers.IntegerField(read_only=True)
    has_login = serializers.SerializerMethodField()

    class Meta:
        model = Client
        fields = [
            "id",
            "household_id",
            "first_name",
            "last_name",
            "date_of_birth",
            "email",
            "phone",
            "tax_residence",
            "tax_status",
            "employment",
            "kyc_status",
            "kyc_date",
            "has_login",
            "created_at",
        ]

    def get_has_login(self, client: Client) -> bool:
        return client.user_id is not None


class ClientFieldsSerializer(StrictInputSerializer):
    """A client's fields; on change, those not sent keep their value."""

    first_name = serializers.CharField(max_length=150)
    last_name = serializers.CharField(max_length=150)
    date_of_birth = serializers.DateField(required=False, allow_null=True)
    email = serializers.EmailField(required=False, allow_blank=True)
    phone = serializers.CharField(max_length=40, required=False, allow_blank=True)
    tax_residence = serializers.RegexField(r"^[A-Z]{2}$", required=False)
    tax_status = serializers.ChoiceField(choices=TaxStatus.choices, required=False)
    employment = serializers.ChoiceField(choices=Employment.choices, required=False)
    kyc_status = serializers.ChoiceField(choices=KycStatus.choices, required=False)
    kyc_date = serializers.DateField(required=False, allow_null=True)


class ClientCreateInputSerializer(ClientFieldsSerializer):
    """A new client in a household you may change."""

    household_id = serializers.IntegerField(min_value=1)


class InvitationInputSerializer(StrictInputSerializer):
    """Invite the client by e-mail (their address on file unless another is given)."""

    email = serializers.EmailField(required=False)


class InvitationSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    email = serializers.EmailField()
    expires_at = serializers.DateTimeField()


class InvitationAcceptInputSerializer(StrictInputSerializer):
    """Sign up with the link's firm and token, choosing a username and a password."""

    firm = serializers.SlugField(max_length=60)
    token = serializers.CharField(max_length=200)
    username = serializers.RegexField(r"^[\w.@+-]+$", max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class SignedUpSerializer(serializers.Serializer):  # type: ignore[type-arg]
    username = serializers.CharField()


class PortfolioSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    client_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = Portfolio
        fields = [
            "id",
            "client_id",
            "number",
            "name",
            "account_type",
            "discretionary",
            "base_currency",
            "status",
            "opened_at",
        ]


class PortfolioCreateInputSerializer(StrictInputSerializer):
    """A new custodial account (base currency USD) for a client you may change."""

    client_id = serializers.IntegerField(min_value=1)
    number = serializers.RegexField(r"^[A-Za-z0-9-]+$", max_length=40)
    account_type = serializers.ChoiceField(choices=PortfolioType.choices)
    discretionary = serializers.BooleanField(default=True)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class PortfolioUpdateInputSerializer(StrictInputSerializer):
    """Fields of the portfolio to change; a closed portfolio stays closed."""

    status = serializers.ChoiceField(choices=PortfolioStatus.choices, required=False)
    discretionary = serializers.BooleanField(required=False)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)


# --- filters -------------------------------------------------------------------------------


class HouseholdFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains", help_text="Name.")

    class Meta:
        model = Household
        fields = ["q"]


class ClientFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", help_text="Name, e-mail or household.")
    household = django_filters.NumberFilter(field_name="household_id")
    kyc_status = django_filters.ChoiceFilter(choices=KycStatus.choices)

    class Meta:
        model = Client
        fields = ["q", "household", "kyc_status"]

    def search(self, queryset: QuerySet[Client], name: str, value: str) -> QuerySet[Client]:
        return queryset.filter(
            Q(first_name__icontains=value)
            | Q(last_name__icontains=value)
            | Q(email__icontains=value)
            | Q(household__name__icontains=value)
        )


class PortfolioFilter(django_filters.FilterSet):
    client = django_filters.NumberFilter(field_name="client_id")
    status = django_filters.ChoiceFilter(choices=PortfolioStatus.choices)
    account_type = django_filters.ChoiceFilter(choices=PortfolioType.choices)

    class Meta:
        model = Portfolio
        fields = ["client", "status", "account_type"]


# --- helpers -------------------------------------------------------------------------------


def _visible_household(membership: Membership, pk: int) -> Household:
    household = household_list_visible(membership=membership).filter(pk=pk).first()
    if household is None:
        raise NotFound()
    return household


def _visible_client(membership: Membership, pk: int) -> Client:
    client = client_list_visible(membership=membership).filter(pk=pk).first()
    if client is None:
        raise NotFound()
    return client


def _changeable_client(membership: Membership, pk: int) -> Client:
    client = _visible_client(membership, pk)
    if not client_can_change(membership=membership, client=client):
        raise PermissionDenied("You may not change this client's household.")
    return client


# --- views -----------------------------------------------------------------------------------


class HouseholdListView(ListModelMixin, FirmScopedGenericAPIView):
    """Households you see: firm admins and compliance all, advisors those assigned to them,
    investors their own. Firm admins and advisors create them (an advisor is assigned to
    the household they create)."""

    permission_classes = [IsAuthenticated, HasRole.of(*BOOK_WRITERS, read=ALL_ROLES)]
    serializer_class = HouseholdSerializer
    filterset_class = HouseholdFilter

    def get_queryset(self) -> QuerySet[Household]:
        if getattr(self, "swagger_fake_view", False):
            return QuerySet(model=Household).none()
        return household_list_visible(membership=self.current_membership)

    @extend_schema(operation_id="households_list", tags=["client book"])
    def get(self, request: Request) -> Response:
        return self.list(request)

    @extend_schema(
        operation_id="households_create",
        tags=["client book"],
        request=HouseholdInputSerializer,
        responses={201: HouseholdDetailSerializer},
    )
    def post(self, request: Request) -> Response:
        data = HouseholdInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = signed_in_user(request)
        household = household_create(actor=actor, **data.validated_data)
        if self.current_membership.role == Role.ADVISOR:
            household_advisor_assign(household=household, advisor=actor, actor=actor)
        return Response(HouseholdDetailSerializer(household).data, status=status.HTTP_201_CREATED)


class HouseholdDetailView(FirmScopedAPIView):
    """One household and its advisors; firm admins and its advisors change it."""

    permission_classes = [IsAuthenticated, HasRole.of(*BOOK_WRITERS, read=ALL_ROLES)]

    @extend_schema(
        operation_id="households_retrieve",
        tags=["client book"],
        responses={200: HouseholdDetailSerializer},
    )
    def get(self, request: Request, pk: int) -> Response:
        household = _visible_household(self.current_membership, pk)
        return Response(HouseholdDetailSerializer(household).data)

    @extend_schema(
        operation_id="households_update",
        tags=["client book"],
        request=HouseholdInputSerializer(partial=True),
        responses={200: HouseholdDetailSerializer},
    )
    def patch(self, request: Request, pk: int) -> Response:
        membership = self.current_membership
        household = _visible_household(membership, pk)
        if not household_can_change(membership=membership, household=household):
            raise PermissionDenied("You may not change this household.")
        data = HouseholdInputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        household_update(household=household, actor=signed_in_user(request), **data.validated_data)
        return Response(HouseholdDetailSerializer(household).data)


class HouseholdAdvisorsView(FirmScopedAPIView):
    """Replace the advisors assigned to a household (firm admins only). Each change is
    audited as household.advisor_assigned / household.advisor_unassigned."""

    permission_classes = [IsAuthenticated, HasRole.of(Role.FIRM_ADMIN)]

    @extend_schema(
        operation_id="households_advisors_set",
        tags=["client book"],
        request=HouseholdAdvisorsInputSerializer,
        responses={200: HouseholdDetailSerializer},
    )
    def put(self, request: Request, pk: int) -> Response:
        household = _visible_household(self.current_membership, pk)
        data = HouseholdAdvisorsInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        wanted = set(data.validated_data["advisor_ids"])
        advisors = {
            m.user_id: m.user
            for m in Membership.objects.select_related("user").filter(
                user_id__in=wanted, role=Role.ADVISOR, is_active=True
            )
        }
        unknown = sorted(wanted - set(advisors))
        if unknown:
            raise ValidationError({"advisor_ids": ["not advisors of this firm: some ids"]})
        current = {u.pk: u for u in household_advisors(household=household)}
        actor = signed_in_user(request)
        for user_id in sorted(set(advisors) - set(current)):
            household_advisor_assign(household=household, advisor=advisors[user_id], actor=actor)
        for user_id in sorted(set(current) - set(advisors)):
            household_advisor_unassign(household=household, advisor=current[user_id], actor=actor)
        return Response(HouseholdDetailSerializer(household).data)


class ClientListView(ListModelMixin, FirmScopedGenericAPIView):
    """Clients you see (investors: their own record), searchable and filterable."""

    permission_classes = [IsAuthenticated, HasRole.of(*BOOK_WRITERS, read=ALL_ROLES)]
    serializer_class = ClientSerializer
    filterset_class = ClientFilter
    ordering_fields = ["last_name", "first_name", "created_at", "kyc_status"]
    ordering = ["last_name", "first_name", "id"]

    def get_queryset(self) -> QuerySet[Client]:
        if getattr(self, "swagger_fake_view", False):
            return QuerySet(model=Client).none()
        return client_list_visible(membership=self.current_membership)

    @extend_schema(operation_id="clients_list", tags=["client book"])
    def get(self, request: Request) -> Response:
        return self.list(request)

    @extend_schema(
        operation_id="clients_create",
        tags=["client book"],
        request=ClientCreateInputSerializer,
        responses={201: ClientSerializer},
    )
    def post(self, request: Request) -> Response:
        data = ClientCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        membership = self.current_membership
        household = (
            household_list_visible(membership=membership)
            .filter(pk=fields.pop("household_id"))
            .first()
        )
        if household is None:
            raise ValidationError({"household_id": ["no such household"]})
        if not household_can_change(membership=membership, household=household):
            raise PermissionDenied("You may not change this household.")
        client = client_create(household=household, actor=signed_in_user(request), **fields)
        return Response(ClientSerializer(client).data, status=status.HTTP_201_CREATED)


class ClientDetailView(FirmScopedAPIView):
    """One client; firm admins and the household's advisors change it."""

    permission_classes = [IsAuthenticated, HasRole.of(*BOOK_WRITERS, read=ALL_ROLES)]

    @extend_schema(
        operation_id="clients_retrieve", tags=["client book"], responses={200: ClientSerializer}
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(ClientSerializer(_visible_client(self.current_membership, pk)).data)

    @extend_schema(
        operation_id="clients_update",
        tags=["client book"],
        request=ClientFieldsSerializer(partial=True),
        responses={200: ClientSerializer},
    )
    def patch(self, request: Request, pk: int) -> Response:
        client = _changeable_client(self.current_membership, pk)
        data = ClientFieldsSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        client_update(client=client, actor=signed_in_user(request), **data.validated_data)
        return Response(ClientSerializer(client).data)


class ClientInvitationView(FirmScopedAPIView):
    """Invite a client to sign up: a single-use link, valid for 7 days, sent by e-mail."""

    permission_classes = [IsAuthenticated, HasRole.of(*BOOK_WRITERS)]

    @extend_schema(
        operation_id="clients_invite",
        tags=["client book"],
        request=InvitationInputSerializer,
        responses={201: InvitationSerializer},
    )
    def post(self, request: Request, pk: int) -> Response:
        client = _changeable_client(self.current_membership, pk)
        data = InvitationInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        firm = self.current_membership.firm
        accept_url = request.build_absolute_uri(f"/invitations/{firm.slug}/") + "{token}/"
        invitation, _token = invitation_create(
            client=client,
            actor=signed_in_user(request),
            email=data.validated_data.get("email"),
            accept_url=accept_url,
        )
        return Response(InvitationSerializer(invitation).data, status=status.HTTP_201_CREATED)


class InvitationAcceptView(PublicApiView):
    """Sign up through an invitation link: creates the investor's login. A used, expired
    or unknown invitation answers 400 naming which; nothing is saved."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"

    @extend_schema(
        operation_id="invitations_accept",
        tags=["auth"],
        request=InvitationAcceptInputSerializer,
        responses={201: SignedUpSerializer},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = InvitationAcceptInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        firm = firm_get_by_slug(slug=data.validated_data["firm"])
        if firm is None:
            raise ValidationError({"token": ["this invitation does not exist"]})
        user = invitation_accept(
            firm=firm,
            token=data.validated_data["token"],
            username=data.validated_data["username"],
            password=data.validated_data["password"],
        )
        return Response(
            SignedUpSerializer({"username": user.username}).data, status=status.HTTP_201_CREATED
        )


class PortfolioListView(ListModelMixin, FirmScopedGenericAPIView):
    """Portfolios (custodial accounts) of the clients you see."""

    permission_classes = [IsAuthenticated, HasRole.of(*BOOK_WRITERS, read=ALL_ROLES)]
    serializer_class = PortfolioSerializer
    filterset_class = PortfolioFilter
    ordering_fields = ["number", "opened_at", "status"]
    ordering = ["number", "id"]

    def get_queryset(self) -> QuerySet[Portfolio]:
        if getattr(self, "swagger_fake_view", False):
            return QuerySet(model=Portfolio).none()
        return portfolio_list_visible(membership=self.current_membership)

    @extend_schema(operation_id="portfolios_list", tags=["client book"])
    def get(self, request: Request) -> Response:
        return self.list(request)

    @extend_schema(
        operation_id="portfolios_create",
        tags=["client book"],
        request=PortfolioCreateInputSerializer,
        responses={201: PortfolioSerializer},
    )
    def post(self, request: Request) -> Response:
        data = PortfolioCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        membership = self.current_membership
        client = client_list_visible(membership=membership).filter(pk=fields.pop("client_id"))
        found = client.first()
        if found is None:
            raise ValidationError({"client_id": ["no such client"]})
        if not client_can_change(membership=membership, client=found):
            raise PermissionDenied("You may not change this client's household.")
        portfolio = portfolio_open(client=found, actor=signed_in_user(request), **fields)
        return Response(PortfolioSerializer(portfolio).data, status=status.HTTP_201_CREATED)


class PortfolioDetailView(FirmScopedAPIView):
    """One portfolio; firm admins and the household's advisors change it."""

    permission_classes = [IsAuthenticated, HasRole.of(*BOOK_WRITERS, read=ALL_ROLES)]

    def _get(self, pk: int) -> Portfolio:
        portfolio = portfolio_list_visible(membership=self.current_membership).filter(pk=pk)
        found = portfolio.first()
        if found is None:
            raise NotFound()
        return found

    @extend_schema(
        operation_id="portfolios_retrieve",
        tags=["client book"],
        responses={200: PortfolioSerializer},
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(PortfolioSerializer(self._get(pk)).data)

    @extend_schema(
        operation_id="portfolios_update",
        tags=["client book"],
        request=PortfolioUpdateInputSerializer,
        responses={200: PortfolioSerializer},
    )
    def patch(self, request: Request, pk: int) -> Response:
        portfolio = self._get(pk)
        membership = self.current_membership
        client = Client.objects.get(pk=portfolio.client_id)
        if not client_can_change(membership=membership, client=client):
            raise PermissionDenied("You may not change this client's household.")
        data = PortfolioUpdateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        portfolio_update(portfolio=portfolio, actor=signed_in_user(request), **data.validated_data)
        return Response(PortfolioSerializer(portfolio).data)
