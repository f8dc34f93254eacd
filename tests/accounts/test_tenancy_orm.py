"""The ORM layer of tenancy: fail-closed managers, and the one cross-firm manager, listed.

``objects_all_firms`` crosses firms at the ORM layer (row-level security still limits
it in the database). Every use in the source tree is listed here; a new one fails this
test until someone looks at it and adds it to the allow-list on purpose.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.apps import apps

from accounts.models import Membership
from accounts.tenancy.models import AllFirmsManager, FirmScopedManager
from accounts.tenancy.registry import firm_owned_models

ROOT = Path(__file__).resolve().parents[2]
CROSS_FIRM_MANAGER = "objects_all_firms"

# (file, enclosing function or class) of every allowed use of objects_all_firms.
ALLOWED_USES = {
    ("accounts/models.py", "Membership"),  # the declaration
    ("accounts/selectors.py", "membership_list_for_user"),  # firm switcher, sign-in
    ("accounts/services.py", "user_auth_event_record"),  # audit a login in each firm
}


def source_files() -> list[Path]:
    skip = {".venv", "node_modules", "tests", "migrations", "staticfiles", ".git"}
    return sorted(
        path for path in ROOT.rglob("*.py") if not skip.intersection(path.relative_to(ROOT).parts)
    )


class _Uses(ast.NodeVisitor):
    """Every mention of a name (attribute, variable or getattr string) with its scope."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.scopes: list[str] = []
        self.found: list[tuple[int, str]] = []

    def _scoped(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self.scopes.append(node.name)
        self.generic_visit(node)
        self.scopes.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped  # noqa: N815

    def _hit(self, node: ast.AST) -> None:
        self.found.append((getattr(node, "lineno", 0), self.scopes[-1] if self.scopes else ""))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr == self.name:
            self._hit(node)
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id == self.name:
            self._hit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if node.value == self.name:  # getattr(Model, "objects_all_firms")
            self._hit(node)


def uses_of(name: str) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path in source_files():
        text = path.read_text(encoding="utf-8")
        if name not in text:
            continue
        visitor = _Uses(name)
        visitor.visit(ast.parse(text, filename=str(path)))
        relative = path.relative_to(ROOT).as_posix()
        found |= {(relative, scope) for _line, scope in visitor.found}
    return found


def test_source_tree_is_scanned():
    files = {p.relative_to(ROOT).as_posix() for p in source_files()}
    assert {"accounts/models.py", "accounts/selectors.py", "accounts/services.py"} <= files
    assert not any(f.startswith(("tests/", ".venv/")) or "/migrations/" in f for f in files)


def test_every_use_of_the_cross_firm_manager_is_allowed():
    uses = uses_of(CROSS_FIRM_MANAGER)
    unexpected = uses - ALLOWED_USES
    assert not unexpected, (
        f"new use of {CROSS_FIRM_MANAGER} in {sorted(unexpected)}: crossing firms must be "
        "rare and deliberate; if it is, add it to ALLOWED_USES with a reason"
    )
    # The allow-list shrinks with the code: a use that is gone leaves the list too.
    assert uses == ALLOWED_USES


def test_all_firms_manager_is_declared_only_on_membership():
    declarations = {
        scope for file, scope in uses_of("AllFirmsManager") if file != "accounts/tenancy/models.py"
    }
    assert declarations <= {"Membership", ""}  # "" is the import line of accounts/models.py
    for model in apps.get_models():
        cross = [m.name for m in model._meta.managers if isinstance(m, AllFirmsManager)]
        if model is Membership:
            assert cross == [CROSS_FIRM_MANAGER]
        else:
            assert cross == [], f"{model._meta.label} declares a cross-firm manager {cross}"


@pytest.mark.parametrize("model", firm_owned_models(), ids=lambda m: m._meta.label)
def test_every_firm_owned_model_fails_closed_by_default(model):
    # Default manager: what Model.objects and most of Django use. Base manager: what
    # related-object access uses. Both must filter by the current firm and raise
    # without one.
    assert isinstance(model._default_manager, FirmScopedManager), model._meta.label
    assert isinstance(model._base_manager, FirmScopedManager), model._meta.label
    assert model._meta.default_manager_name in (None, "objects")


def test_registry_finds_the_firm_owned_models():
    labels = {m._meta.label for m in firm_owned_models()}
    assert {"accounts.Membership", "compliance.AuditEvent"} <= labels
