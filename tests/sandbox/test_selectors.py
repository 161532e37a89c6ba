"""Label and field selector parsing, as kube-apiserver reads them."""

from __future__ import annotations

import pytest

from channelmodel_sandbox.selectors import SelectorError, field_matcher, label_matcher

LABELS = {"tier": "gold", "region": "eu-west", "app.kubernetes.io/name": "channelmodel"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("", True),
        ("tier=gold", True),
        ("tier==gold", True),
        ("tier=silver", False),
        ("tier!=silver", True),
        ("absent!=x", True),
        ("tier in (silver, gold)", True),
        ("tier in (silver)", False),
        ("tier notin (silver)", True),
        ("absent notin (x)", True),
        ("tier", True),
        ("!tier", False),
        ("!absent", True),
        ("app.kubernetes.io/name=channelmodel,region in (eu-west,us),tier", True),
        ("app.kubernetes.io/name=channelmodel,region in (us)", False),
    ],
)
def test_label_selector(selector: str, matches: bool) -> None:
    assert label_matcher(selector)(LABELS) is matches


@pytest.mark.parametrize("selector", ["tier in gold", "!tier in (a)", "=x", "a b"])
def test_bad_label_selectors_are_rejected(selector: str) -> None:
    with pytest.raises(SelectorError):
        label_matcher(selector)


def test_field_selector_on_nested_fields() -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "ns"},
        "status": {"phase": "Running"},
        "spec": {"nodeName": ""},
    }
    assert field_matcher("metadata.name=p,status.phase=Running")(pod)
    assert not field_matcher("status.phase!=Running")(pod)
    assert field_matcher("spec.nodeName=")(pod)  # absent and empty compare equal, as in Kubernetes
    assert field_matcher("spec.missing=")(pod)
    with pytest.raises(SelectorError):
        field_matcher("status.phase in (Running)")
