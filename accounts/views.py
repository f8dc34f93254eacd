"""HTML pages of the client book and risk profiling.

Investor: the multi-step questionnaire (progress, save and resume) and the result page.
Advisor (and firm admin, compliance): the book with search and filters, the client page
(profile history and answers, flags, strategy). Firm admin: questionnaire versions and
their editor, statistics, and the risk-level mapping. Thin: reads from
:mod:`accounts.pages` and the selectors, changes through the services.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, cast

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.dateparse import parse_date
from django.utils.text import slugify
from django.views.decorators.http import require_http_methods, require_POST

from accounts.book_selectors import (
    client_can_change,
    client_for_user,
    client_get_visible,
    household_advisors,
    household_list_visible,
)
from accounts.book_services import (
    client_create,
    household_advisor_assign,
    household_advisor_unassign,
    household_create,
    invitation_accept,
    invitation_create,
    invitation_get,
    portfolio_open,
)
from accounts.models import (
    Client,
    Dimension,
    Household,
    Membership,
    ModelPortfolio,
    ProfileFlag,
    ProfileStatus,
    Question,
    Questionnaire,
    QuestionnaireResponse,
    RiskLevelMapping,
    RiskProfile,
    Role,
    StrategyAssignment,
)
from accounts.pages import (
    ASSET_CLASS_WORDS,
    PROFILE_FILTERS,
    book_rows,
    client_page,
    result_page,
    target_choices,
    target_from_value,
    target_key,
    target_views,
)
from accounts.profiling.default_questionnaire import OptionSpec, QuestionSpec
from accounts.risk_selectors import (
    questionnaire_current,
    questionnaire_questions,
    questionnaire_statistics,
)
from accounts.risk_services import (
    profile_flag_resolve,
    questionnaire_install_default,
    questionnaire_new_version,
    questionnaire_publish,
    questionnaire_specs,
    questionnaire_update_draft,
    response_save,
    response_start,
    response_submit,
)
from accounts.selectors import firm_get_by_slug
from accounts.strategy_services import (
    ASSET_CLASSES,
    model_portfolio_create,
    model_portfolios_install_default,
    risk_mapping_set,
    strategy_assign_from_profile,
    strategy_override,
    strategy_override_decide,
)
from accounts.tenancy.context import firm_context
from accounts.web import signed_in_user
from advisor.middleware import SESSION_FIRM_KEY
from portfolios.models import PortfolioType
from portfolios.models_strategy import Strategy

BOOK_ROLES = frozenset({Role.FIRM_ADMIN, Role.ADVISOR, Role.COMPLIANCE})
TOLERANCE_PER_STEP = 5
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"  # for login() after sign-up


def _membership(request: HttpRequest, roles: frozenset[str]) -> Membership:
    membership = cast("Membership | None", getattr(request, "membership", None))
    if membership is None or membership.role not in roles:
        raise Http404("No such page.")
    return membership


def _errors(exc: ValidationError) -> list[str]:
    if hasattr(exc, "error_dict"):
        return [
            m if k == "__all__" else f"{k}: {m}" for k, v in exc.message_dict.items() for m in v
        ]
    return list(exc.messages)


def _attempt(request: HttpRequest, action: Callable[[], Any]) -> Any:
    """Run a service in a savepoint; a ValidationError becomes error messages, nothing saved."""
    try:
        with transaction.atomic():
            return action()
    except ValidationError as exc:
        for message in _errors(exc):
            messages.error(request, message)
        return None


# --- investor: questionnaire and result ----------------------------------------------------


@dataclass
class Step:
    title: str
    questions: list[tuple[Question, list[Any]]]


STEP_TITLES = {
    "tolerance": "Your attitude to risk",
    "capacity": "Your financial situation",
    "horizon": "When you need the money",
    "goals": "Your goals and experience",
    "experience": "Your goals and experience",
}


def questionnaire_steps(questionnaire: Questionnaire) -> list[Step]:
    """Questions grouped into steps: tolerance in chunks, then one step per other part."""
    steps: list[Step] = []
    for question, options in questionnaire_questions(questionnaire=questionnaire):
        title = STEP_TITLES.get(question.dimension, "More about you")
        last = steps[-1] if steps else None
        full = (
            last is not None
            and question.dimension == "tolerance"
            and len(last.questions) >= TOLERANCE_PER_STEP
        )
        if last is None or last.title != title or full:
            steps.append(Step(title, []))
        steps[-1].questions.append((question, options))
    totals: dict[str, int] = {}
    for step in steps:
        totals[step.title] = totals.get(step.title, 0) + 1
    seen: dict[str, int] = {}
    for step in steps:
        if totals[step.title] > 1:
            seen[step.title] = seen.get(step.title, 0) + 1
            step.title = f"{step.title} ({seen[step.title]} of {totals[step.title]})"
    return steps


def _investor_client(request: HttpRequest) -> Client:
    _membership(request, frozenset({Role.INVESTOR}))
    client = client_for_user(user=signed_in_user(request))
    if client is None:
        raise Http404("Your firm has not opened a client record for you yet.")
    return client


@login_required
@require_http_methods(["GET", "POST"])
def questionnaire(request: HttpRequest) -> HttpResponse:
    client = _investor_client(request)
    current = questionnaire_current() or questionnaire_install_default()
    response = QuestionnaireResponse.objects.filter(
        client=client, questionnaire=current, status="in_progress"
    ).first()
    answers: dict[str, str] = dict(response.answers) if response else {}
    steps = questionnaire_steps(current)
    try:
        index = int(request.GET.get("step") or request.POST.get("step") or 0)
    except ValueError:
        index = 0
    if request.method == "GET" and "step" not in request.GET:
        # Resume: the first step with an unanswered question.
        index = next(
            (i for i, s in enumerate(steps) if any(q.code not in answers for q, _ in s.questions)),
            len(steps) - 1,
        )
    index = max(0, min(index, len(steps) - 1))
    step = steps[index]
    missing: list[str] = []
    if request.method == "POST":
        action = request.POST.get("action", "next")
        given = {
            q.code: request.POST[f"q_{q.code}"]
            for q, _ in step.questions
            if request.POST.get(f"q_{q.code}")
        }
        if response is None:
            response = response_start(
                client=client, questionnaire=current, actor=signed_in_user(request)
            )
        saved = _attempt(
            request,
            lambda: response_save(response=response, answers=given, actor=signed_in_user(request)),
        )
        if saved is not None:
            answers = dict(saved.answers)
            missing = [q.code for q, _ in step.questions if q.code not in answers]
            if action == "save":
                messages.success(request, "Your answers are saved. Come back any time to finish.")
                return redirect("accounts:risk_profile")
            if action == "back":
                return redirect(f"{reverse('accounts:questionnaire')}?step={max(index - 1, 0)}")
            if not missing and action == "next" and index < len(steps) - 1:
                return redirect(f"{reverse('accounts:questionnaire')}?step={index + 1}")
            if not missing and action == "submit":
                profile = _attempt(
                    request, lambda: response_submit(response=saved, actor=signed_in_user(request))
                )
                if profile is not None:
                    return redirect("accounts:risk_profile")
            if missing:
                messages.error(request, "Please answer every question on this page.")
    answered = sum(1 for s in steps for q, _ in s.questions if q.code in answers)
    total = sum(len(s.questions) for s in steps)
    return render(
        request,
        "accounts/questionnaire.html",
        {
            "questionnaire": current,
            "steps": steps,
            "step": step,
            "index": index,
            "number": index + 1,
            "is_last": index == len(steps) - 1,
            "answers": answers,
            "missing": missing,
            "answered": answered,
            "total": total,
            "percent": round(100 * answered / total) if total else 0,
        },
    )


@login_required
def risk_profile(request: HttpRequest) -> HttpResponse:
    client = _investor_client(request)
    profile = (
        RiskProfile.objects.filter(
            client=client, status__in=[ProfileStatus.CURRENT, ProfileStatus.STALE]
        )
        .order_by("-created_at")
        .first()
    )
    in_progress = QuestionnaireResponse.objects.filter(client=client, status="in_progress").first()
    return render(
        request,
        "accounts/risk_profile.html",
        {
            "client": client,
            "result": result_page(profile=profile) if profile else None,
            "in_progress": in_progress,
            "answered": len(in_progress.answers) if in_progress else 0,
        },
    )


# --- advisors: the book and the client page ---------------------------------------------------


@login_required
def client_list(request: HttpRequest) -> HttpResponse:
    membership = _membership(request, BOOK_ROLES)
    query = request.GET.get("q", "").strip()[:100]
    status = request.GET.get("status", "")
    if status not in PROFILE_FILTERS:
        status = ""
    rows = book_rows(membership=membership, query=query, status=status)
    context = {
        "rows": rows,
        "q": query,
        "status": status,
        "filters": PROFILE_FILTERS,
        "can_add": membership.role in WRITERS,
        "households": list(household_list_visible(membership=membership, perm="change_household"))
        if membership.role in WRITERS
        else [],
    }
    if request.headers.get("HX-Request") == "true":
        return render(request, "accounts/_client_rows.html", context)
    return render(request, "accounts/client_list.html", context)


WRITERS = frozenset({Role.FIRM_ADMIN, Role.ADVISOR})


def _date(raw: str) -> dt.date | None:
    if not raw.strip():
        return None
    try:
        value = parse_date(raw.strip())
    except ValueError:
        value = None
    if value is None:
        raise ValidationError({"date_of_birth": ["enter a date as YYYY-MM-DD"]})
    return value


@login_required
@require_POST
def client_new(request: HttpRequest) -> HttpResponse:
    """Add a client to one of your households, or to a new household."""
    membership = _membership(request, WRITERS)
    actor = signed_in_user(request)
    post = request.POST

    def create() -> Client:
        new_name = post.get("new_household", "").strip()
        household: Household | None
        if new_name:
            household = household_create(actor=actor, name=new_name)
            if membership.role == Role.ADVISOR:
                household_advisor_assign(household=household, advisor=actor, actor=actor)
        else:
            chosen = post.get("household", "")
            household = (
                household_list_visible(membership=membership, perm="change_household")
                .filter(pk=int(chosen) if chosen.isdigit() else 0)
                .first()
            )
            if household is None:
                raise ValidationError(
                    {"household": ["choose one of your households or name a new one"]}
                )
        dob = _date(post.get("date_of_birth", ""))
        return client_create(
            household=household,
            actor=actor,
            first_name=post.get("first_name", ""),
            last_name=post.get("last_name", ""),
            email=post.get("email", "").strip(),
            date_of_birth=dob,
        )

    client = _attempt(request, create)
    if client is None:
        return redirect("accounts:client_list")
    messages.success(request, f"{client.full_name} added.")
    return redirect("accounts:client_detail", pk=client.pk)


@login_required
@require_POST
def portfolio_new(request: HttpRequest, pk: int) -> HttpResponse:
    client = _changeable(request, pk)
    post = request.POST
    done = _attempt(
        request,
        lambda: portfolio_open(
            client=client,
            actor=signed_in_user(request),
            number=post.get("number", ""),
            account_type=post.get("account_type", ""),
            discretionary=post.get("discretionary") == "on",
        ),
    )
    if done is not None:
        messages.success(request, f"Portfolio {done.number} opened.")
    return redirect("accounts:client_detail", pk=client.pk)


@login_required
@require_POST
def household_advisors_set(request: HttpRequest, pk: int) -> HttpResponse:
    """Firm admins choose the advisors of the client's household."""
    membership, client = _client(request, pk)
    if membership.role != Role.FIRM_ADMIN:
        raise Http404("No such page.")
    household = Household.objects.get(pk=client.household_id)
    advisors = {m.user_id: m.user for m in _firm_advisors()}
    wanted = {int(v) for v in request.POST.getlist("advisor") if v.isdigit()} & set(advisors)
    current = {u.pk: u for u in household_advisors(household=household)}
    actor = signed_in_user(request)

    def apply() -> bool:
        for user_id in sorted(wanted - set(current)):
            household_advisor_assign(household=household, advisor=advisors[user_id], actor=actor)
        for user_id in sorted(set(current) - wanted):
            household_advisor_unassign(household=household, advisor=current[user_id], actor=actor)
        return True

    if _attempt(request, apply):
        messages.success(request, "Advisors of the household saved.")
    return redirect("accounts:client_detail", pk=client.pk)


def _firm_advisors() -> list[Membership]:
    return list(
        Membership.objects.select_related("user")
        .filter(role=Role.ADVISOR, is_active=True)
        .order_by("user__username")
    )


def _client(request: HttpRequest, pk: int) -> tuple[Membership, Client]:
    membership = _membership(request, BOOK_ROLES)
    client = client_get_visible(membership=membership, client_id=pk)
    if client is None:
        raise Http404("No such client.")
    return membership, client


@login_required
def client_detail(request: HttpRequest, pk: int) -> HttpResponse:
    membership, client = _client(request, pk)
    page = client_page(client=client)
    is_admin = membership.role == Role.FIRM_ADMIN
    assigned = {u.pk for u in page.advisors}
    return render(
        request,
        "accounts/client_detail.html",
        {
            "page": page,
            "can_change": client_can_change(membership=membership, client=client),
            "is_compliance": membership.role == Role.COMPLIANCE,
            "advisor_choices": [(m.user, m.user_id in assigned) for m in _firm_advisors()]
            if is_admin
            else [],
            "account_types": PortfolioType.choices,
        },
    )


def _changeable(request: HttpRequest, pk: int) -> Client:
    membership, client = _client(request, pk)
    if not client_can_change(membership=membership, client=client):
        raise Http404("No such client.")
    return client


@login_required
@require_POST
def flag_resolve(request: HttpRequest, pk: int, flag_id: int) -> HttpResponse:
    client = _changeable(request, pk)
    flag = ProfileFlag.objects.filter(pk=flag_id, profile__client=client).first()
    if flag is None:
        raise Http404("No such flag.")
    note = request.POST.get("note", "")
    if _attempt(
        request, lambda: profile_flag_resolve(flag=flag, actor=signed_in_user(request), note=note)
    ):
        messages.success(request, "Flag resolved.")
    return redirect("accounts:client_detail", pk=client.pk)


@login_required
@require_POST
def client_invite(request: HttpRequest, pk: int) -> HttpResponse:
    """E-mail the client a single-use sign-up link."""
    client = _changeable(request, pk)
    firm = cast("Membership", getattr(request, "membership", None)).firm
    accept_url = request.build_absolute_uri(f"/invitations/{firm.slug}/") + "{token}/"
    done = _attempt(
        request,
        lambda: invitation_create(
            client=client, actor=signed_in_user(request), accept_url=accept_url
        ),
    )
    if done is not None:
        messages.success(request, f"Invitation sent to {done[0].email}.")
    return redirect("accounts:client_detail", pk=client.pk)


@login_required
@require_POST
def strategy_set(request: HttpRequest, pk: int) -> HttpResponse:
    client = _changeable(request, pk)
    profile = RiskProfile.objects.filter(client=client, status=ProfileStatus.CURRENT).first()
    if profile is None:
        messages.error(request, "The client has no current risk profile.")
        return redirect("accounts:client_detail", pk=client.pk)
    actor = signed_in_user(request)
    if request.POST.get("action") == "override":
        # "strategy:<id>" or "model_portfolio:<id>" (a bare id: a model portfolio, as before).
        raw = request.POST.get("target") or f"model_portfolio:{request.POST.get('model_portfolio')}"
        target = target_from_value(raw)
        if target is None:
            messages.error(request, "Choose a strategy or a model portfolio.")
            return redirect("accounts:client_detail", pk=client.pk)
        rationale = request.POST.get("rationale", "")
        chosen = (
            {"strategy": target} if isinstance(target, Strategy) else {"model_portfolio": target}
        )
        done = _attempt(
            request,
            lambda: strategy_override(profile=profile, actor=actor, rationale=rationale, **chosen),
        )
        if done is not None:
            messages.success(
                request,
                "Override waiting for compliance approval."
                if done.status == "pending_approval"
                else "Strategy overridden.",
            )
    else:
        done = _attempt(request, lambda: strategy_assign_from_profile(profile=profile, actor=actor))
        if done is not None:
            messages.success(request, "Strategy mapped from the risk profile.")
    return redirect("accounts:client_detail", pk=client.pk)


@login_required
@require_POST
def assignment_decide(request: HttpRequest, pk: int, assignment_id: int) -> HttpResponse:
    membership, client = _client(request, pk)
    if membership.role != Role.COMPLIANCE:
        raise Http404("No such page.")
    assignment = StrategyAssignment.objects.filter(pk=assignment_id, client=client).first()
    if assignment is None:
        raise Http404("No such assignment.")
    approve = request.POST.get("decision") == "approve"
    note = request.POST.get("note", "")
    done = _attempt(
        request,
        lambda: strategy_override_decide(
            assignment=assignment, actor=signed_in_user(request), approve=approve, note=note
        ),
    )
    if done is not None:
        messages.success(request, "Override approved." if approve else "Override rejected.")
    return redirect("accounts:client_detail", pk=client.pk)


@login_required
def approval_list(request: HttpRequest) -> HttpResponse:
    """Overrides outside the risk band, waiting for the compliance officer."""
    _membership(request, frozenset({Role.COMPLIANCE}))
    pending = list(
        StrategyAssignment.objects.filter(status="pending_approval").order_by("created_at")
    )
    clients = {c.pk: c for c in Client.objects.filter(pk__in=[a.client_id for a in pending])}
    targets = target_views(pending)
    profiles = {p.pk: p for p in RiskProfile.objects.filter(pk__in=[a.profile_id for a in pending])}
    rows = [
        (a, clients[a.client_id], targets[target_key(a)], profiles[a.profile_id]) for a in pending
    ]
    return render(request, "accounts/approval_list.html", {"rows": rows})


# --- firm admin: questionnaires and the mapping ------------------------------------------------

ADMIN = frozenset({Role.FIRM_ADMIN})


@login_required
@require_http_methods(["GET", "POST"])
def questionnaire_list(request: HttpRequest) -> HttpResponse:
    _membership(request, ADMIN)
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "install":
            _attempt(request, lambda: questionnaire_install_default(actor=signed_in_user(request)))
        elif action == "new_version":
            source = Questionnaire.objects.filter(pk=request.POST.get("source") or 0).first()
            if source is not None:
                draft = _attempt(
                    request,
                    lambda: questionnaire_new_version(source=source, actor=signed_in_user(request)),
                )
                if draft is not None:
                    return redirect("accounts:questionnaire_edit", pk=draft.pk)
        return redirect("accounts:questionnaire_list")
    versions = list(Questionnaire.objects.order_by("key", "-version"))
    return render(request, "accounts/questionnaire_list.html", {"versions": versions})


@login_required
@require_http_methods(["GET", "POST"])
def questionnaire_edit(request: HttpRequest, pk: int) -> HttpResponse:
    _membership(request, ADMIN)
    found = Questionnaire.objects.filter(pk=pk).first()
    if found is None:
        raise Http404("No such questionnaire.")
    if request.method == "POST":
        if request.POST.get("action") == "publish":
            if _attempt(
                request,
                lambda: questionnaire_publish(questionnaire=found, actor=signed_in_user(request)),
            ):
                messages.success(request, f"Version {found.version} is published.")
        else:
            specs = _edited_specs(request, questionnaire_specs(questionnaire=found))
            name = request.POST.get("name", found.name)
            if specs is not None and _attempt(
                request,
                lambda: questionnaire_update_draft(
                    questionnaire=found, actor=signed_in_user(request), name=name, questions=specs
                ),
            ):
                messages.success(request, "Draft saved.")
        return redirect("accounts:questionnaire_edit", pk=found.pk)
    return render(
        request,
        "accounts/questionnaire_edit.html",
        {
            "questionnaire": found,
            "questions": questionnaire_questions(questionnaire=found),
            "statistics": questionnaire_statistics(questionnaire=found),
            "dimensions": Dimension.choices,
        },
    )


def _edited_specs(request: HttpRequest, specs: list[QuestionSpec]) -> list[QuestionSpec] | None:
    """The draft's questions as edited in the form: texts and points changed, questions
    ticked for removal dropped, and a new question (with one option per line) added."""
    post = request.POST
    edited = []
    for spec in specs:
        if post.get(f"remove_{spec.code}"):
            continue
        options = []
        for option in spec.options:
            raw = post.get(f"score_{spec.code}_{option.code}", str(option.score))
            try:
                score = int(raw)
            except ValueError:
                messages.error(request, f"{spec.code}/{option.code}: the points must be a number")
                return None
            text = post.get(f"option_{spec.code}_{option.code}", option.text).strip()
            options.append(replace(option, score=score, text=text or option.text))
        text = post.get(f"text_{spec.code}", spec.text).strip() or spec.text
        edited.append(replace(spec, text=text, options=tuple(options)))
    new_text = post.get("new_text", "").strip()
    if new_text:
        added = _new_question(request, new_text, {s.code for s in specs})
        if added is None:
            return None
        edited.append(added)
    return edited


def _new_question(request: HttpRequest, text: str, taken: set[str]) -> QuestionSpec | None:
    """A question from the editor's "add a question" block. Options, one per line:
    ``text = points`` (horizon questions: ``text = points = years``)."""
    post = request.POST
    dimension = post.get("new_dimension", "")
    code = slugify(post.get("new_code", "") or text)[:60].replace("-", "_") or "question"
    if code in taken:
        messages.error(request, f"a question with the code {code!r} exists: choose another code")
        return None
    options = []
    for number, line in enumerate(post.get("new_options", "").splitlines(), start=1):
        if not line.strip():
            continue
        parts = [part.strip() for part in line.split("=")]
        try:
            score = int(parts[1])
            years = Decimal(parts[2]) if len(parts) > 2 and parts[2] else None
        except (IndexError, ValueError, ArithmeticError):
            messages.error(request, f"option line {number}: write it as 'text = points'")
            return None
        options.append(OptionSpec(f"o{number}", parts[0], score, (), years))
    return QuestionSpec(code=code, dimension=dimension, text=text, options=tuple(options))


@login_required
@require_http_methods(["GET", "POST"])
def strategy_mapping(request: HttpRequest) -> HttpResponse:
    _membership(request, ADMIN)
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "install":
            _attempt(
                request, lambda: model_portfolios_install_default(actor=signed_in_user(request))
            )
        elif action == "new_portfolio":
            created = _attempt(request, lambda: _model_portfolio_from_form(request))
            if created is not None:
                messages.success(request, f"Model portfolio {created.name} added.")
        else:
            wanted: dict[int, Strategy | ModelPortfolio] = {}
            for level in range(1, 11):
                raw = request.POST.get(f"level_{level}") or ""
                # "strategy:<id>" or "model_portfolio:<id>"; a bare id: a model portfolio.
                target = target_from_value(raw if ":" in raw else f"model_portfolio:{raw}")
                if target is not None:
                    wanted[level] = target
            if _attempt(
                request, lambda: risk_mapping_set(actor=signed_in_user(request), mapping=wanted)
            ):
                messages.success(request, "Mapping saved.")
        return redirect("accounts:strategy_mapping")
    mapping = {m.risk_level: m for m in RiskLevelMapping.objects.all()}
    chosen = {level: "{}:{}".format(*target_key(m)) for level, m in mapping.items()}
    choices = target_choices()
    return render(
        request,
        "accounts/strategy_mapping.html",
        {
            "levels": [(level, chosen.get(level)) for level in range(1, 11)],
            "choices": choices,
            "has_strategies": any(c.kind == "strategy" for c in choices),
            "portfolios": list(ModelPortfolio.objects.order_by("min_risk_level")),
            "asset_classes": [(key, ASSET_CLASS_WORDS[key]) for key in ASSET_CLASSES],
            "level_range": range(1, 11),
        },
    )


def _percent(raw: str, field: str) -> Decimal:
    try:
        return Decimal(raw.strip() or "0") / 100
    except ArithmeticError:
        raise ValidationError({field: ["enter a number of percent"]}) from None


def _model_portfolio_from_form(request: HttpRequest) -> ModelPortfolio:
    """A placeholder model portfolio from the mapping page's form (weights in percent)."""
    post = request.POST
    name = post.get("name", "").strip()
    if not name:
        raise ValidationError({"name": ["must not be blank"]})
    if ModelPortfolio.objects.filter(name=name).exists():
        raise ValidationError({"name": ["a model portfolio with this name exists"]})
    weights = {
        key: _percent(post.get(f"weight_{key}", ""), key)
        for key in ASSET_CLASSES
        if post.get(f"weight_{key}", "").strip() not in ("", "0")
    }
    low, high = post.get("min_risk_level", ""), post.get("max_risk_level", "")
    if not (low.isdigit() and high.isdigit()):
        raise ValidationError({"min_risk_level": ["choose the band of risk levels"]})
    return model_portfolio_create(
        actor=signed_in_user(request),
        name=name,
        weights=weights,
        min_risk_level=int(low),
        max_risk_level=int(high),
        bad_year_return=-abs(_percent(post.get("bad_year", ""), "bad_year")),
    )


# --- invitation sign-up (anonymous) -----------------------------------------------------------


@require_http_methods(["GET", "POST"])
def invitation_signup(request: HttpRequest, firm_slug: str, token: str) -> HttpResponse:
    firm = firm_get_by_slug(slug=firm_slug)
    if firm is None:
        raise Http404("No such invitation.")
    problem = ""
    with firm_context(firm), transaction.atomic():
        try:
            invitation = invitation_get(token=token)
            email = invitation.email
        except ValidationError as exc:
            problem, email = " ".join(_errors(exc)), ""
    if request.method == "POST" and not problem:
        try:
            user = invitation_accept(
                firm=firm,
                token=token,
                username=request.POST.get("username", ""),
                password=request.POST.get("password", ""),
            )
        except ValidationError as exc:
            for message in _errors(exc):
                messages.error(request, message)
        else:
            # Signed in at once (Django's login(): a new session, and the audited
            # "auth.login" event), in the firm that invited them, and on to onboarding.
            login(request, user, backend=MODEL_BACKEND)
            request.session[SESSION_FIRM_KEY] = firm.slug
            messages.success(request, "Your account is ready: here is your questionnaire.")
            return redirect("accounts:questionnaire")
    return render(
        request,
        "accounts/invitation.html",
        {"firm": firm, "problem": problem, "email": email},
        status=400 if problem else 200,
    )
