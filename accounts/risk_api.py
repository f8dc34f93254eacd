"""API of questionnaires, responses, risk profiles and their flags.

Thin views: validate input, call one service or selector, serialise. Firm admins author
questionnaire versions (a published version is immutable: editing it answers 400);
investors answer for themselves, advisors for the clients of their households.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.mixins import ListModelMixin
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.book_selectors import client_can_change, client_for_user, client_list_visible
from accounts.models import (
    Client,
    Dimension,
    Membership,
    ProfileFlag,
    ProfileStatus,
    Questionnaire,
    QuestionnaireResponse,
    QuestionnaireStatus,
    RiskProfile,
    Role,
    User,
)
from accounts.profiling.default_questionnaire import OptionSpec, QuestionSpec
from accounts.profiling.scoring import KNOWN_TAGS
from accounts.risk_selectors import (
    flag_list_visible,
    profile_flags,
    profile_list_visible,
    questionnaire_list_visible,
    questionnaire_questions,
    questionnaire_statistics,
    response_list_visible,
)
from accounts.risk_services import (
    profile_flag_resolve,
    questionnaire_create_draft,
    questionnaire_new_version,
    questionnaire_publish,
    questionnaire_update_draft,
    response_save,
    response_start,
    response_submit,
)
from accounts.web import signed_in_user
from advisor.api.permissions import ALL_ROLES, HasRole
from advisor.api.serializers import StrictInputSerializer
from advisor.api.views import FirmScopedAPIView, FirmScopedGenericAPIView

ANSWERING_ROLES = (Role.FIRM_ADMIN, Role.ADVISOR, Role.INVESTOR)

# --- serializers -------------------------------------------------------------------------


class AnswerOptionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    code = serializers.CharField()
    text = serializers.CharField()
    score = serializers.IntegerField()
    tags = serializers.ListField(child=serializers.CharField())
    horizon_years = serializers.DecimalField(max_digits=5, decimal_places=2, allow_null=True)


class QuestionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    code = serializers.CharField()
    position = serializers.IntegerField()
    dimension = serializers.ChoiceField(choices=Dimension.choices)
    text = serializers.CharField()
    options = AnswerOptionSerializer(many=True)

    def get_fields(self) -> dict[str, serializers.Field]:  # type: ignore[type-arg]
        # "help_text" would shadow Field.help_text as a class attribute.
        return {**super().get_fields(), "help_text": serializers.CharField()}


class QuestionnaireSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = Questionnaire
        fields = ["id", "key", "name", "version", "status", "published_at", "created_at"]


class QuestionnaireDetailSerializer(QuestionnaireSerializer):
    questions = serializers.SerializerMethodField()

    class Meta(QuestionnaireSerializer.Meta):
        fields = [*QuestionnaireSerializer.Meta.fields, "questions"]

    @extend_schema_field(QuestionSerializer(many=True))
    def get_questions(self, questionnaire: Questionnaire) -> list[dict[str, Any]]:
        return [
            dict(
                QuestionSerializer(
                    {
                        "code": q.code,
                        "position": q.position,
                        "dimension": q.dimension,
                        "text": q.text,
                        "help_text": q.help_text,
                        "options": options,
                    }
                ).data
            )
            for q, options in questionnaire_questions(questionnaire=questionnaire)
        ]


class OptionInputSerializer(StrictInputSerializer):
    code = serializers.SlugField(max_length=60)
    text = serializers.CharField(max_length=300)
    score = serializers.IntegerField(min_value=-1000, max_value=1000)
    tags = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(KNOWN_TAGS)), required=False, default=list
    )
    horizon_years = serializers.DecimalField(
        max_digits=5,
        decimal_places=2,
        min_value=Decimal(0),
        required=False,
        allow_null=True,
        default=None,
        help_text="Horizon questions only: years until the money is needed.",
    )


class QuestionInputSerializer(StrictInputSerializer):
    code = serializers.SlugField(max_length=60)
    dimension = serializers.ChoiceField(choices=Dimension.choices)
    text = serializers.CharField(max_length=500)
    options = OptionInputSerializer(many=True, min_length=2, max_length=20)  # type: ignore[call-arg]

    def get_fields(self) -> dict[str, serializers.Field]:  # type: ignore[type-arg]
        # "help_text" would shadow Field.help_text as a class attribute.
        help_text = serializers.CharField(
            max_length=500, required=False, allow_blank=True, default=""
        )
        return {**super().get_fields(), "help_text": help_text}


class QuestionnaireInputSerializer(StrictInputSerializer):
    """A draft questionnaire version: its name and (all of) its questions."""

    key = serializers.SlugField(max_length=60)
    name = serializers.CharField(max_length=200)
    questions = QuestionInputSerializer(many=True, max_length=100)  # type: ignore[call-arg]


class QuestionnaireUpdateInputSerializer(StrictInputSerializer):
    """Rename a draft and/or replace all of its questions."""

    name = serializers.CharField(max_length=200, required=False)
    questions = QuestionInputSerializer(many=True, max_length=100, required=False)  # type: ignore[call-arg]


def _specs(questions: list[dict[str, Any]]) -> list[QuestionSpec]:
    return [
        QuestionSpec(
            code=q["code"],
            dimension=q["dimension"],
            text=q["text"],
            help_text=q.get("help_text", ""),
            options=tuple(
                OptionSpec(
                    o["code"],
                    o["text"],
                    o["score"],
                    tuple(o.get("tags") or ()),
                    o.get("horizon_years"),
                )
                for o in q["options"]
            ),
        )
        for q in questions
    ]


class TolerancItemStatisticSerializer(serializers.Serializer):  # type: ignore[type-arg]
    item = serializers.CharField()
    mean = serializers.FloatField()
    corrected_item_total = serializers.FloatField(allow_null=True)
    alpha_if_deleted = serializers.FloatField(allow_null=True)


class ScaleReportSerializer(serializers.Serializer):  # type: ignore[type-arg]
    respondents = serializers.IntegerField()
    items = serializers.IntegerField()
    alpha = serializers.FloatField(allow_null=True, help_text="Cronbach's alpha.")
    item_statistics = TolerancItemStatisticSerializer(many=True)


class QuestionnaireStatisticsSerializer(serializers.Serializer):  # type: ignore[type-arg]
    responses = serializers.IntegerField()
    enough_responses = serializers.BooleanField()
    minimum_responses = serializers.IntegerField()
    tolerance = ScaleReportSerializer(allow_null=True)
    risk_levels = serializers.DictField(child=serializers.IntegerField())


class ResponseSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    client_id = serializers.IntegerField(read_only=True)
    questionnaire_id = serializers.IntegerField(read_only=True)
    answers = serializers.DictField(child=serializers.CharField())

    class Meta:
        model = QuestionnaireResponse
        fields = [
            "id",
            "client_id",
            "questionnaire_id",
            "answers",
            "status",
            "started_at",
            "updated_at",
            "submitted_at",
        ]


class ResponseStartInputSerializer(StrictInputSerializer):
    """Start (or resume) answering a published questionnaire version. Investors answer for
    themselves and leave client_id out."""

    questionnaire_id = serializers.IntegerField(min_value=1)
    client_id = serializers.IntegerField(min_value=1, required=False)


class AnswersInputSerializer(StrictInputSerializer):
    """Answers by question code: the code of the chosen option."""

    answers = serializers.DictField(
        child=serializers.JSONField(), help_text="question code -> option code"
    )


class SubmitInputSerializer(StrictInputSerializer):
    """Last answers (optional) and submit: the response is scored into a risk profile."""

    answers = serializers.DictField(child=serializers.JSONField(), required=False, default=dict)


class FlagSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    profile_id = serializers.IntegerField(read_only=True)
    resolved_by = serializers.SlugRelatedField[User](slug_field="username", read_only=True)
    questions = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = ProfileFlag
        fields = [
            "id",
            "profile_id",
            "code",
            "message",
            "questions",
            "resolved_at",
            "resolved_by",
            "resolution_note",
            "created_at",
        ]


class RiskProfileSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    client_id = serializers.IntegerField(read_only=True)
    questionnaire_id = serializers.IntegerField(read_only=True)
    response_id = serializers.IntegerField(read_only=True)
    binding = serializers.ListField(child=serializers.CharField())
    flags = serializers.SerializerMethodField()

    class Meta:
        model = RiskProfile
        fields = [
            "id",
            "client_id",
            "questionnaire_id",
            "response_id",
            "tolerance_score",
            "capacity_score",
            "horizon_years",
            "tolerance_level",
            "capacity_level",
            "horizon_level",
            "risk_level",
            "binding",
            "explanation",
            "status",
            "valid_until",
            "created_at",
            "flags",
        ]

    @extend_schema_field(FlagSerializer(many=True))
    def get_flags(self, profile: RiskProfile) -> list[dict[str, Any]]:
        return list(FlagSerializer(profile_flags(profile=profile), many=True).data)


class FlagResolveInputSerializer(StrictInputSerializer):
    """How the advisor resolved the contradiction (mandatory)."""

    note = serializers.CharField(max_length=2000)


class ProfileFilter(django_filters.FilterSet):
    client = django_filters.NumberFilter(field_name="client_id")
    status = django_filters.ChoiceFilter(choices=ProfileStatus.choices)
    flagged = django_filters.BooleanFilter(
        field_name="has_open_flags", help_text="Only profiles with (or without) open flags."
    )

    class Meta:
        model = RiskProfile
        fields = ["client", "status", "flagged"]


# --- helpers -------------------------------------------------------------------------------


def _questionnaire(membership: Membership, pk: int) -> Questionnaire:
    questionnaire = questionnaire_list_visible(membership=membership).filter(pk=pk).first()
    if questionnaire is None:
        raise NotFound()
    return questionnaire


def _may_answer_for(membership: Membership, client: Client) -> bool:
    if membership.role == Role.INVESTOR:
        return client.user_id == membership.user_id
    return client_can_change(membership=membership, client=client)


def _response(membership: Membership, pk: int) -> QuestionnaireResponse:
    response = response_list_visible(membership=membership).filter(pk=pk).first()
    if response is None:
        raise NotFound()
    client = Client.objects.get(pk=response.client_id)
    if not _may_answer_for(membership, client):
        raise PermissionDenied("You may not answer for this client.")
    return response


# --- views -----------------------------------------------------------------------------------


class QuestionnaireListView(ListModelMixin, FirmScopedGenericAPIView):
    """The firm's questionnaire versions (drafts for firm admins only); firm admins
    create draft versions."""

    permission_classes = [IsAuthenticated, HasRole.of(Role.FIRM_ADMIN, read=ALL_ROLES)]
    serializer_class = QuestionnaireSerializer

    def get_queryset(self) -> QuerySet[Questionnaire]:
        if getattr(self, "swagger_fake_view", False):
            return QuerySet(model=Questionnaire).none()
        return questionnaire_list_visible(membership=self.current_membership)

    @extend_schema(operation_id="questionnaires_list", tags=["questionnaires"])
    def get(self, request: Request) -> Response:
        return self.list(request)

    @extend_schema(
        operation_id="questionnaires_create",
        tags=["questionnaires"],
        request=QuestionnaireInputSerializer,
        responses={201: QuestionnaireDetailSerializer},
    )
    def post(self, request: Request) -> Response:
        data = QuestionnaireInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        questionnaire = questionnaire_create_draft(
            actor=signed_in_user(request),
            key=data.validated_data["key"],
            name=data.validated_data["name"],
            questions=_specs(data.validated_data["questions"]),
        )
        return Response(
            QuestionnaireDetailSerializer(questionnaire).data, status=status.HTTP_201_CREATED
        )


class QuestionnaireDetailView(FirmScopedAPIView):
    """One questionnaire version with its questions and options. Only a draft changes."""

    permission_classes = [IsAuthenticated, HasRole.of(Role.FIRM_ADMIN, read=ALL_ROLES)]

    @extend_schema(
        operation_id="questionnaires_retrieve",
        tags=["questionnaires"],
        responses={200: QuestionnaireDetailSerializer},
    )
    def get(self, request: Request, pk: int) -> Response:
        questionnaire = _questionnaire(self.current_membership, pk)
        return Response(QuestionnaireDetailSerializer(questionnaire).data)

    @extend_schema(
        operation_id="questionnaires_update",
        tags=["questionnaires"],
        request=QuestionnaireUpdateInputSerializer,
        responses={200: QuestionnaireDetailSerializer},
        description="Drafts only: a published version answers 400 and stays as it is.",
    )
    def patch(self, request: Request, pk: int) -> Response:
        questionnaire = _questionnaire(self.current_membership, pk)
        data = QuestionnaireUpdateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        questions = data.validated_data.get("questions")
        questionnaire = questionnaire_update_draft(
            questionnaire=questionnaire,
            actor=signed_in_user(request),
            name=data.validated_data.get("name"),
            questions=None if questions is None else _specs(questions),
        )
        return Response(QuestionnaireDetailSerializer(questionnaire).data)


class QuestionnairePublishView(FirmScopedAPIView):
    """Publish a draft version; the version published before is superseded."""

    permission_classes = [IsAuthenticated, HasRole.of(Role.FIRM_ADMIN)]

    @extend_schema(
        operation_id="questionnaires_publish",
        tags=["questionnaires"],
        request=None,
        responses={200: QuestionnaireDetailSerializer},
    )
    def post(self, request: Request, pk: int) -> Response:
        questionnaire = _questionnaire(self.current_membership, pk)
        questionnaire = questionnaire_publish(
            questionnaire=questionnaire, actor=signed_in_user(request)
        )
        return Response(QuestionnaireDetailSerializer(questionnaire).data)


class QuestionnaireNewVersionView(FirmScopedAPIView):
    """Start the next version as a draft copy of this one."""

    permission_classes = [IsAuthenticated, HasRole.of(Role.FIRM_ADMIN)]

    @extend_schema(
        operation_id="questionnaires_new_version",
        tags=["questionnaires"],
        request=None,
        responses={201: QuestionnaireDetailSerializer},
    )
    def post(self, request: Request, pk: int) -> Response:
        source = _questionnaire(self.current_membership, pk)
        draft = questionnaire_new_version(source=source, actor=signed_in_user(request))
        return Response(QuestionnaireDetailSerializer(draft).data, status=status.HTTP_201_CREATED)


class QuestionnaireStatisticsView(FirmScopedAPIView):
    """Does the version measure one thing? Cronbach's alpha of the tolerance items,
    item-total correlations (from 10 submitted responses) and the risk level distribution."""

    permission_classes = [IsAuthenticated, HasRole.of(Role.FIRM_ADMIN, Role.COMPLIANCE)]

    @extend_schema(
        operation_id="questionnaires_statistics",
        tags=["questionnaires"],
        responses={200: QuestionnaireStatisticsSerializer},
    )
    def get(self, request: Request, pk: int) -> Response:
        questionnaire = _questionnaire(self.current_membership, pk)
        statistics = questionnaire_statistics(questionnaire=questionnaire)
        return Response(QuestionnaireStatisticsSerializer(statistics).data)


class ResponseListView(ListModelMixin, FirmScopedGenericAPIView):
    """Questionnaire responses of the clients you see; start (or resume) one."""

    permission_classes = [IsAuthenticated, HasRole.of(*ANSWERING_ROLES, read=ALL_ROLES)]
    serializer_class = ResponseSerializer

    def get_queryset(self) -> QuerySet[QuestionnaireResponse]:
        if getattr(self, "swagger_fake_view", False):
            return QuerySet(model=QuestionnaireResponse).none()
        return response_list_visible(membership=self.current_membership)

    @extend_schema(operation_id="questionnaire_responses_list", tags=["risk profiles"])
    def get(self, request: Request) -> Response:
        return self.list(request)

    @extend_schema(
        operation_id="questionnaire_responses_start",
        tags=["risk profiles"],
        request=ResponseStartInputSerializer,
        responses={200: ResponseSerializer, 201: ResponseSerializer},
        description="201 with a new response, 200 with the one in progress (resume).",
    )
    def post(self, request: Request) -> Response:
        data = ResponseStartInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = self.current_membership
        client_id = data.validated_data.get("client_id")
        if membership.role == Role.INVESTOR:
            client = client_for_user(user=membership.user)
            if client is None or (client_id is not None and client_id != client.pk):
                raise ValidationError({"client_id": ["no such client"]})
        else:
            if client_id is None:
                raise ValidationError({"client_id": ["which client answers?"]})
            client = client_list_visible(membership=membership).filter(pk=client_id).first()
            if client is None:
                raise ValidationError({"client_id": ["no such client"]})
            if not _may_answer_for(membership, client):
                raise PermissionDenied("You may not answer for this client.")
        questionnaire = (
            Questionnaire.objects.filter(pk=data.validated_data["questionnaire_id"])
            .exclude(status=QuestionnaireStatus.DRAFT)
            .first()
        )
        if questionnaire is None:
            raise ValidationError({"questionnaire_id": ["no such published questionnaire"]})
        started = QuestionnaireResponse.objects.filter(
            client=client, questionnaire=questionnaire, status="in_progress"
        ).exists()
        response = response_start(
            client=client, questionnaire=questionnaire, actor=signed_in_user(request)
        )
        code = status.HTTP_200_OK if started else status.HTTP_201_CREATED
        return Response(ResponseSerializer(response).data, status=code)


class ResponseDetailView(FirmScopedAPIView):
    """One response; PATCH saves answers so far (save and resume)."""

    permission_classes = [IsAuthenticated, HasRole.of(*ANSWERING_ROLES, read=ALL_ROLES)]

    @extend_schema(
        operation_id="questionnaire_responses_retrieve",
        tags=["risk profiles"],
        responses={200: ResponseSerializer},
    )
    def get(self, request: Request, pk: int) -> Response:
        found = response_list_visible(membership=self.current_membership).filter(pk=pk).first()
        if found is None:
            raise NotFound()
        return Response(ResponseSerializer(found).data)

    @extend_schema(
        operation_id="questionnaire_responses_save",
        tags=["risk profiles"],
        request=AnswersInputSerializer,
        responses={200: ResponseSerializer},
    )
    def patch(self, request: Request, pk: int) -> Response:
        response = _response(self.current_membership, pk)
        data = AnswersInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        response = response_save(
            response=response, answers=data.validated_data["answers"], actor=signed_in_user(request)
        )
        return Response(ResponseSerializer(response).data)


class ResponseSubmitView(FirmScopedAPIView):
    """Submit a complete response: it is scored into the client's current risk profile.
    Missing answers or answers outside the option set answer 400 naming each question,
    and nothing is saved."""

    permission_classes = [IsAuthenticated, HasRole.of(*ANSWERING_ROLES)]

    @extend_schema(
        operation_id="questionnaire_responses_submit",
        tags=["risk profiles"],
        request=SubmitInputSerializer,
        responses={201: RiskProfileSerializer},
    )
    def post(self, request: Request, pk: int) -> Response:
        response = _response(self.current_membership, pk)
        data = SubmitInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        profile = response_submit(
            response=response, actor=signed_in_user(request), answers=data.validated_data["answers"]
        )
        return Response(RiskProfileSerializer(profile).data, status=status.HTTP_201_CREATED)


class RiskProfileListView(ListModelMixin, FirmScopedGenericAPIView):
    """Risk profiles of the clients you see (investors: their own)."""

    permission_classes = [IsAuthenticated, HasRole.of(read=ALL_ROLES)]
    serializer_class = RiskProfileSerializer
    filterset_class = ProfileFilter
    ordering_fields = ["created_at", "risk_level", "valid_until"]
    ordering = ["-created_at", "-id"]

    def get_queryset(self) -> QuerySet[RiskProfile]:
        if getattr(self, "swagger_fake_view", False):
            return QuerySet(model=RiskProfile).none()
        return profile_list_visible(membership=self.current_membership)

    @extend_schema(operation_id="risk_profiles_list", tags=["risk profiles"])
    def get(self, request: Request) -> Response:
        return self.list(request)


class RiskProfileDetailView(FirmScopedAPIView):
    """One risk profile, with how it was set and its consistency flags."""

    permission_classes = [IsAuthenticated, HasRole.of(read=ALL_ROLES)]

    @extend_schema(
        operation_id="risk_profiles_retrieve",
        tags=["risk profiles"],
        responses={200: RiskProfileSerializer},
    )
    def get(self, request: Request, pk: int) -> Response:
        profile = profile_list_visible(membership=self.current_membership).filter(pk=pk).first()
        if profile is None:
            raise NotFound()
        return Response(RiskProfileSerializer(profile).data)


class FlagResolveView(FirmScopedAPIView):
    """Resolve a consistency flag with a note (firm admins and the client's advisors)."""

    permission_classes = [IsAuthenticated, HasRole.of(Role.FIRM_ADMIN, Role.ADVISOR)]

    @extend_schema(
        operation_id="profile_flags_resolve",
        tags=["risk profiles"],
        request=FlagResolveInputSerializer,
        responses={200: FlagSerializer},
    )
    def post(self, request: Request, pk: int) -> Response:
        membership = self.current_membership
        flag = flag_list_visible(membership=membership).filter(pk=pk).first()
        if flag is None:
            raise NotFound()
        profile = RiskProfile.objects.get(pk=flag.profile_id)
        client = Client.objects.get(pk=profile.client_id)
        if not client_can_change(membership=membership, client=client):
            raise PermissionDenied("You may not change this client's household.")
        data = FlagResolveInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        note = data.validated_data["note"]
        flag = profile_flag_resolve(flag=flag, actor=signed_in_user(request), note=note)
        return Response(FlagSerializer(flag).data)
