"""The session protocols (training/protocols.py): the real sessions implement them, the check that
test doubles match them catches every kind of drift, and every session double declares them."""

import ast
from pathlib import Path

import pytest

from segstudio.training.follow_session import FollowSession
from segstudio.training.process_session import ProcessSession
from segstudio.training.protocols import LRSession, Session
from segstudio.training.session import TrainingSession
from tests.conftest import implements, signature_mismatches

TESTS = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("cls, protocol", [
    (TrainingSession, Session), (TrainingSession, LRSession), (ProcessSession, Session), (FollowSession, Session)])
def test_the_real_sessions_implement_the_protocols(cls, protocol):
    assert signature_mismatches(cls, protocol) == []


class Exact:
    def run(self, config, on_event, dataset=None, resume=""):
        pass

    def cancel(self):
        pass


class NoResume(Exact):  # a double written before runs could be resumed
    def run(self, config, on_event, dataset=None):
        pass


class Renamed(Exact):
    def run(self, cfg, on_event, dataset=None, resume=""):
        pass


class OtherDefault(Exact):
    def run(self, config, on_event, dataset=None, resume="last"):
        pass


class KeywordOnly(Exact):
    def run(self, config, on_event, *, dataset=None, resume=""):
        pass


class Extra(Exact):
    def run(self, config, on_event, dataset=None, resume="", fold=0):
        pass


class Lenient(Exact):  # FollowSession's config is optional: it follows a run someone else configured
    def run(self, config=None, on_event=None, dataset=None, resume=""):
        pass


class NoCancel:
    def run(self, config, on_event, dataset=None, resume=""):
        pass


def test_a_double_that_drifted_from_the_protocol_is_named():
    assert signature_mismatches(Exact, Session) == signature_mismatches(Lenient, Session) == []
    for drifted in (NoResume, Renamed, OtherDefault, KeywordOnly, Extra):
        problem, = signature_mismatches(drifted, Session)
        assert problem.startswith(f"{drifted.__name__}.run(") and "is not Session.run(self, config" in problem
    assert signature_mismatches(NoCancel, Session) == ["NoCancel has no cancel()"]
    assert signature_mismatches(Exact, LRSession) == ["Exact has no find_lr()"]


def test_implements_refuses_the_class_when_it_is_made():
    assert implements(Session)(Exact) is Exact
    with pytest.raises(TypeError, match=r"NoResume.run\(self, config, on_event, dataset=None\) is not"):
        implements(Session)(NoResume)


def session_doubles(tree: ast.AST):
    """Classes that stand in for a session: they define cancel() or find_lr(), or run(config, ...)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            methods = {f.name: f for f in node.body if isinstance(f, ast.FunctionDef)}
            run = methods.get("run")
            takes_config = run is not None and [a.arg for a in run.args.args[1:2]] in (["config"], ["cfg"])
            if takes_config or {"cancel", "find_lr"} & set(methods):
                yield node


def declares_a_protocol(cls: ast.ClassDef) -> bool:
    return any(isinstance(d, ast.Call) and getattr(d.func, "id", "") == "implements" for d in cls.decorator_list)


def test_every_session_double_in_the_tests_declares_its_protocol():
    doubles, undeclared = [], []
    for path in sorted(set(TESTS.rglob("test_*.py")) - {Path(__file__).resolve()}):
        for cls in session_doubles(ast.parse(path.read_text(encoding="utf-8"))):
            doubles.append(cls.name)
            if not declares_a_protocol(cls):
                undeclared.append(f"{path.relative_to(TESTS)}:{cls.lineno} {cls.name}")
    assert undeclared == [], "decorate these with tests.conftest.implements(Session or LRSession)"
    assert {"ScriptedSession", "Scripted", "Finished", "Trained", "Sweeping"} <= set(doubles)
