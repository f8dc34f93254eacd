"""Questionnaire versions in the Django admin: one firm at a time, drafts edited through the
audited services, published versions read-only, publish and new-version actions."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlencode

import pytest
from django.urls import reverse

from accounts.models import (
    AnswerOption,
    Question,
    Questionnaire,
    QuestionnaireStatus,
    User,
)
from accounts.profiling.default_questionnaire import OptionSpec, QuestionSpec
from accounts.risk_services import (
    questionnaire_create_draft,
    questionnaire_install_default,
    questionnaire_new_version,
)
from accounts.tenancy import current_firm, firm_context
from compliance.models import AuditEvent

CHANGELIST = "admin:accounts_questionnaire_changelist"


class _FormFields(HTMLParser):
    """The fields a browser would post from one form of the page (submit buttons aside)."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.data: dict[str, str] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside or "__prefix__" in (a.get("name") or ""):
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text")
            if kind in {"submit", "button", "file"}:
                return
            if kind in {"checkbox", "radio"}:
                if "checked" in a:
                    self.data[name] = a.get("value") or "on"
                return
            self.data[name] = a.get("value") or ""
        elif tag == "select" and name:
            self._select = name
            self.data.setdefault(name, "")
        elif tag == "option" and self._select and "selected" in a:
            self.data[self._select] = a.get("value") or ""
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = ""

    def handle_data(self, data):
        if self._textarea:
            self.data[self._textarea] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea:
            # Browsers drop the newline that follows <textarea>.
            self.data[self._textarea] = self.data[self._textarea].removeprefix("\n")
            self._textarea = None


def form_data(html: str, form_id: str = "questionnaire_form") -> dict[str, str]:
    parser = _FormFields(form_id)
    parser.feed(html)
    return parser.data


@pytest.fixture
def superuser(db) -> User:
    return User.objects.create_superuser(username="platform", password="pw-12345-long", email="")


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def questionnaires(firm_a, firm_b):
    """Alpha: the default questionnaire published (v1) and a draft v2; beta: a draft of its
    own, whose name must never show for alpha."""
    with firm_context(firm_a.firm):
        published = questionnaire_install_default()
        draft = questionnaire_new_version(source=published, actor=None)
    with firm_context(firm_b.firm):
        beta = questionnaire_create_draft(
            actor=None,
            key="beta-private",
            name="Beta private questionnaire",
            questions=[
                QuestionSpec(
                    "beta_q",
                    "tolerance",
                    "A question only beta asks",
                    (OptionSpec("a", "A", 1), OptionSpec("b", "B", 2)),
                )
            ],
        )
    return published, draft, beta


def firm_query(firm) -> dict[str, str]:
    return {"firm__id__exact": str(firm.pk)}


def preserved(firm) -> str:
    return "?" + urlencode({"_changelist_filters": f"firm__id__exact={firm.pk}"})


def change_url(questionnaire, firm) -> str:
    return reverse("admin:accounts_questionnaire_change", args=[questionnaire.pk]) + preserved(firm)


def events(firm, action) -> list[AuditEvent]:
    with firm_context(firm):
        return list(AuditEvent.objects.filter(action=action).order_by("seq"))


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


@pytest.mark.django_db
def test_list_without_a_firm_is_empty_and_says_why(admin_client, questionnaires):
    index = admin_client.get(reverse("admin:index"))
    assert index.status_code == 200
    assert reverse(CHANGELIST) in index.text
    response = admin_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    assert "Choose a firm" in response.text
    assert "Risk profile questionnaire" not in response.text
    assert "Beta private questionnaire" not in response.text
    assert current_firm() is None


@pytest.mark.django_db
def test_list_of_one_firm_shows_its_versions_with_their_status(
    admin_client, questionnaires, firm_a, firm_b
):
    response = admin_client.get(reverse(CHANGELIST), firm_query(firm_a.firm))
    assert response.status_code == 200
    assert response.text.count("Risk profile questionnaire") >= 2
    assert "Published" in response.text
    assert "Draft" in response.text
    assert "Beta private questionnaire" not in response.text
    assert current_firm() is None

    response = admin_client.get(reverse(CHANGELIST), firm_query(firm_b.firm))
    assert "Beta private questionnaire" in response.text
    assert "Risk profile questionnaire" not in response.text

    # The status filter narrows within the firm.
    response = admin_client.get(
        reverse(CHANGELIST), {**firm_query(firm_a.firm), "status__exact": "published"}
    )
    assert "1 questionnaire" in response.text


@pytest.mark.django_db
def test_another_firms_questionnaire_is_not_found(admin_client, questionnaires, firm_a):
    beta = questionnaires[2]
    response = admin_client.get(change_url(beta, firm_a.firm))
    assert response.status_code == 302  # the admin's "does not exist" redirect
    assert (
        admin_client.get(reverse("admin:accounts_questionnaire_change", args=[beta.pk])).status_code
        == 302
    )  # no firm at all
    response = admin_client.post(change_url(beta, firm_a.firm), {"name": "Taken over"})
    assert response.status_code == 302
    delete = reverse("admin:accounts_questionnaire_delete", args=[beta.pk])
    admin_client.post(delete + preserved(firm_a.firm), {"post": "yes"})
    with firm_context(questionnaires[2].firm):
        assert Questionnaire.objects.get(pk=beta.pk).name == "Beta private questionnaire"


@pytest.mark.django_db
def test_editing_a_draft_goes_through_the_audited_service(
    admin_client, questionnaires, firm_a, superuser
):
    _, draft, _ = questionnaires
    url = change_url(draft, firm_a.firm)
    page = admin_client.get(url)
    assert page.status_code == 200
    assert 'name="_save"' in page.text
    data = form_data(page.text)
    initial = int(data["questions-INITIAL_FORMS"])
    assert initial > 0
    assert data["questions-TOTAL_FORMS"] == str(initial + 1)  # one empty extra form

    with firm_context(firm_a.firm):
        first = Question.objects.filter(questionnaire=draft).order_by("position")[0]
    index = next(
        k.split("-")[1] for k, v in data.items() if k.endswith("-code") and v == first.code
    )
    data["name"] = "Risk profile questionnaire (2027)"
    data[f"questions-{index}-text"] = "Edited in the admin"
    lines = data[f"questions-{index}-options"].splitlines()
    code, text, _score, *rest = (part.strip() for part in lines[0].split("|"))
    lines[0] = " | ".join([code, text, "9", *rest])
    data[f"questions-{index}-options"] = "\r\n".join(lines)
    data["_save"] = "Save"

    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["errors"] if response.context else ""
    assert current_firm() is None

    with firm_context(firm_a.firm):
        draft.refresh_from_db()
        assert draft.name == "Risk profile questionnaire (2027)"
        assert draft.status == QuestionnaireStatus.DRAFT
        edited = Question.objects.get(questionnaire=draft, code=first.code)
        assert edited.text == "Edited in the admin"
        option = AnswerOption.objects.filter(question=edited).order_by("position")[0]
        assert (option.code, option.score) == (code, 9)
    (event,) = events(firm_a.firm, "questionnaire.draft_changed")
    assert event.actor_id == superuser.pk
    assert event.payload["name"] == "Risk profile questionnaire (2027)"
    assert first.code in event.payload["questions"]
    history = reverse("admin:accounts_questionnaire_history", args=[draft.pk])
    page = admin_client.get(history + preserved(firm_a.firm))
    assert page.status_code == 200
    assert "Changed" in page.text


@pytest.mark.django_db
def test_saving_an_unchanged_draft_writes_no_event(admin_client, questionnaires, firm_a):
    _, draft, _ = questionnaires
    url = change_url(draft, firm_a.firm)
    data = form_data(admin_client.get(url).text)
    response = admin_client.post(url, data | {"_save": "Save"})
    assert response.status_code == 302
    assert events(firm_a.firm, "questionnaire.draft_changed") == []


@pytest.mark.django_db
def test_a_bad_edit_names_the_problem_and_saves_nothing(admin_client, questionnaires, firm_a):
    _, draft, _ = questionnaires
    url = change_url(draft, firm_a.firm)
    data = form_data(admin_client.get(url).text)
    data["questions-0-options"] = "only | One option left | 1"
    data["questions-1-options"] = "x | y | not-a-number"
    response = admin_client.post(url, data | {"_save": "Save"})
    assert response.status_code == 200
    assert "Enter a whole number" in response.text
    data["questions-1-options"] = form_data(admin_client.get(url).text)["questions-1-options"]
    response = admin_client.post(url, data | {"_save": "Save"})
    assert response.status_code == 200
    assert "a question needs at least two options" in response.text
    assert events(firm_a.firm, "questionnaire.draft_changed") == []
    with firm_context(firm_a.firm):
        first = Question.objects.filter(questionnaire=draft).order_by("position")[0]
        assert AnswerOption.objects.filter(question=first).count() > 1


@pytest.mark.django_db
def test_adding_a_question_to_a_draft(admin_client, questionnaires, firm_a):
    _, draft, _ = questionnaires
    url = change_url(draft, firm_a.firm)
    data = form_data(admin_client.get(url).text)
    n = int(data["questions-INITIAL_FORMS"])
    assert data["questions-TOTAL_FORMS"] == str(n + 1)  # one empty extra form
    data |= {
        f"questions-{n}-position": "99",
        f"questions-{n}-code": "tol_new",
        f"questions-{n}-dimension": "tolerance",
        f"questions-{n}-text": "A new tolerance item",
        f"questions-{n}-options": "low | Low | 1\nhigh | High | 5 | seeks_max_growth",
        "_save": "Save",
    }
    response = admin_client.post(url, data)
    assert response.status_code == 302
    with firm_context(firm_a.firm):
        added = Question.objects.get(questionnaire=draft, code="tol_new")
        assert added.position == n + 1  # renumbered by the service, last
        options = list(AnswerOption.objects.filter(question=added).order_by("position"))
        assert [(o.code, o.score, o.tags) for o in options] == [
            ("low", 1, []),
            ("high", 5, ["seeks_max_growth"]),
        ]


@pytest.mark.django_db
def test_removing_a_question_from_a_draft(admin_client, questionnaires, firm_a):
    _, draft, _ = questionnaires
    url = change_url(draft, firm_a.firm)
    data = form_data(admin_client.get(url).text)
    removed = data["questions-0-code"]
    data["questions-0-DELETE"] = "on"
    data["questions-0-text"] = ""  # a removed question's fields are not validated
    response = admin_client.post(url, data | {"_save": "Save"})
    assert response.status_code == 302
    with firm_context(firm_a.firm):
        codes = set(Question.objects.filter(questionnaire=draft).values_list("code", flat=True))
    assert removed not in codes
    assert len(codes) == int(data["questions-INITIAL_FORMS"]) - 1
    (event,) = events(firm_a.firm, "questionnaire.draft_changed")
    assert removed not in event.payload["questions"]


@pytest.mark.django_db
def test_a_published_version_is_read_only(admin_client, questionnaires, firm_a):
    published, _, _ = questionnaires
    url = change_url(published, firm_a.firm)
    page = admin_client.get(url)
    assert page.status_code == 200
    assert 'name="_save"' not in page.text
    assert 'name="questions-0-text"' not in page.text  # no editable question fields
    with firm_context(firm_a.firm):
        first = Question.objects.filter(questionnaire=published).order_by("position")[0]
        before = [(q.code, q.text) for q in Question.objects.filter(questionnaire=published)]
    assert first.text in page.text
    with firm_context(firm_a.firm):
        option = AnswerOption.objects.filter(question=first).order_by("position")[0]
    assert option.text in page.text  # the options are listed, read-only
    assert "deletelink" not in page.text
    assert "deletelink" in admin_client.get(change_url(questionnaires[1], firm_a.firm)).text

    # A forged post, as if it were a draft, is refused and changes nothing.
    forged = {
        "name": "Rewritten history",
        "questions-TOTAL_FORMS": "1",
        "questions-INITIAL_FORMS": "1",
        "questions-MIN_NUM_FORMS": "0",
        "questions-MAX_NUM_FORMS": "1000",
        "questions-0-id": str(first.pk),
        "questions-0-questionnaire": str(published.pk),
        "questions-0-position": "1",
        "questions-0-code": first.code,
        "questions-0-dimension": first.dimension,
        "questions-0-text": "Rewritten question",
        "questions-0-options": "a | A | 1\nb | B | 2",
        "_save": "Save",
    }
    assert admin_client.post(url, forged).status_code == 403
    delete = reverse("admin:accounts_questionnaire_delete", args=[published.pk])
    assert admin_client.get(delete + preserved(firm_a.firm)).status_code == 403
    assert admin_client.post(delete + preserved(firm_a.firm), {"post": "yes"}).status_code == 403
    with firm_context(firm_a.firm):
        published.refresh_from_db()
        assert published.name == "Risk profile questionnaire"
        assert published.status == QuestionnaireStatus.PUBLISHED
        after = [(q.code, q.text) for q in Question.objects.filter(questionnaire=published)]
    assert after == before
    assert events(firm_a.firm, "questionnaire.draft_changed") == []


@pytest.mark.django_db
def test_publish_action_publishes_and_supersedes_audited(
    admin_client, questionnaires, firm_a, superuser
):
    published, draft, _ = questionnaires
    url = reverse(CHANGELIST) + "?" + urlencode(firm_query(firm_a.firm))
    response = admin_client.post(
        url, {"action": "publish", "_selected_action": [str(draft.pk)]}, follow=True
    )
    assert response.status_code == 200
    assert any("is published" in m for m in messages_of(response))
    with firm_context(firm_a.firm):
        draft.refresh_from_db()
        published.refresh_from_db()
    assert draft.status == QuestionnaireStatus.PUBLISHED
    assert published.status == QuestionnaireStatus.SUPERSEDED
    event = events(firm_a.firm, "questionnaire.published")[-1]
    assert event.actor_id == superuser.pk
    assert event.object_id == str(draft.pk)
    assert event.payload["supersedes"] == [published.pk]
    assert "Superseded" in response.text

    # Publishing it again is refused, with a message, and changes nothing.
    response = admin_client.post(
        url, {"action": "publish", "_selected_action": [str(draft.pk)]}, follow=True
    )
    assert any("was not published" in m for m in messages_of(response))
    assert len(events(firm_a.firm, "questionnaire.published")) == 2  # install + this one


@pytest.mark.django_db
def test_publish_refuses_an_incomplete_draft(admin_client, questionnaires, firm_b):
    beta = questionnaires[2]  # tolerance questions only
    url = reverse(CHANGELIST) + "?" + urlencode(firm_query(firm_b.firm))
    response = admin_client.post(
        url, {"action": "publish", "_selected_action": [str(beta.pk)]}, follow=True
    )
    assert any("needs" in m and "was not published" in m for m in messages_of(response))
    with firm_context(firm_b.firm):
        beta.refresh_from_db()
    assert beta.status == QuestionnaireStatus.DRAFT
    assert events(firm_b.firm, "questionnaire.published") == []


@pytest.mark.django_db
def test_new_version_action_copies_a_version_audited(admin_client, firm_a, superuser):
    with firm_context(firm_a.firm):
        published = questionnaire_install_default()
        questions = Question.objects.filter(questionnaire=published).count()
    url = reverse(CHANGELIST) + "?" + urlencode(firm_query(firm_a.firm))
    response = admin_client.post(
        url, {"action": "new_version", "_selected_action": [str(published.pk)]}, follow=True
    )
    assert any("is a new draft" in m for m in messages_of(response))
    with firm_context(firm_a.firm):
        draft = Questionnaire.objects.get(key=published.key, version=2)
        assert draft.status == QuestionnaireStatus.DRAFT
        assert Question.objects.filter(questionnaire=draft).count() == questions
    created = events(firm_a.firm, "questionnaire.draft_created")[-1]
    assert created.actor_id == superuser.pk
    assert created.object_id == str(draft.pk)

    # A second draft of the same questionnaire is refused with a message.
    response = admin_client.post(
        url, {"action": "new_version", "_selected_action": [str(published.pk)]}, follow=True
    )
    assert any("already has a draft" in m for m in messages_of(response))
    with firm_context(firm_a.firm):
        assert Questionnaire.objects.filter(key=published.key).count() == 2


@pytest.mark.django_db
def test_actions_on_another_firms_version_do_nothing(admin_client, questionnaires, firm_a):
    beta = questionnaires[2]
    url = reverse(CHANGELIST) + "?" + urlencode(firm_query(firm_a.firm))
    admin_client.post(url, {"action": "publish", "_selected_action": [str(beta.pk)]})
    with firm_context(beta.firm):
        beta.refresh_from_db()
    assert beta.status == QuestionnaireStatus.DRAFT
    assert events(beta.firm, "questionnaire.published") == []


@pytest.mark.django_db
def test_add_and_delete_a_draft_through_the_services(admin_client, firm_a, superuser):
    add = reverse("admin:accounts_questionnaire_add")
    assert admin_client.get(add).status_code == 403  # no firm chosen
    page = admin_client.get(add + preserved(firm_a.firm))
    assert page.status_code == 200
    response = admin_client.post(
        add + preserved(firm_a.firm), {"key": "retirement", "name": "Retirement check"}
    )
    assert response.status_code == 302
    with firm_context(firm_a.firm):
        draft = Questionnaire.objects.get(key="retirement")
    assert (draft.version, draft.status) == (1, QuestionnaireStatus.DRAFT)
    (created,) = events(firm_a.firm, "questionnaire.draft_created")
    assert created.actor_id == superuser.pk

    # A second draft of the same key is refused in the form.
    response = admin_client.post(
        add + preserved(firm_a.firm), {"key": "retirement", "name": "Again"}
    )
    assert response.status_code == 200
    assert "already has a draft" in response.text

    delete = reverse("admin:accounts_questionnaire_delete", args=[draft.pk])
    assert admin_client.get(delete + preserved(firm_a.firm)).status_code == 200
    response = admin_client.post(delete + preserved(firm_a.firm), {"post": "yes"})
    assert response.status_code == 302
    with firm_context(firm_a.firm):
        assert not Questionnaire.objects.filter(key="retirement").exists()
    (deleted,) = events(firm_a.firm, "questionnaire.draft_deleted")
    assert deleted.actor_id == superuser.pk
    assert deleted.payload["key"] == "retirement"


@pytest.mark.django_db
def test_the_firm_page_links_to_its_questionnaires(admin_client, questionnaires, firm_a):
    page = admin_client.get(reverse("admin:accounts_firm_change", args=[firm_a.firm.pk]))
    assert page.status_code == 200
    link = reverse(CHANGELIST) + "?" + urlencode(firm_query(firm_a.firm))
    assert f'<a href="{link}">2 version(s)</a>' in page.text
    assert admin_client.get(reverse("admin:accounts_firm_add")).status_code == 200


@pytest.mark.django_db
def test_firm_members_cannot_use_the_questionnaire_admin(client, firm_a, questionnaires):
    from accounts.models import Role

    client.force_login(firm_a.user(Role.FIRM_ADMIN))
    response = client.get(reverse(CHANGELIST), firm_query(firm_a.firm))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
