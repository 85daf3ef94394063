"""Playbook files: validation with line and column, first-match rules, reachability."""

from __future__ import annotations

from importlib import resources

import pytest

from tierwise.core.errors import ConfigError
from tierwise.strategy.playbook import (
    DEFAULT_SLA_HOURS,
    Contact,
    Offer,
    PlaybookError,
    TaskTemplate,
    parse_playbook,
    reachability,
)


def default_text() -> str:
    return resources.files("tierwise.strategy").joinpath("default_playbook.yaml").read_text("utf-8")


SMALL = """\
version: 1
service_levels: {vip: 2}
rules:
  - name: vip
    when: tier = 'high'
    service_level: vip
    account_manager: true
    offer: {percent: 10}
    task: {reason: vip_call, queue: vip_desk}
  - name: at_risk
    when: churn_probability >= 0.6
    service_level: standard
    contact: {channel: phone, every_days: 14}
    task: {reason: winback_call, due_hours: 8}
  - name: rest
    service_level: basic
"""


def test_default_playbook_follows_the_seeds_and_every_rule_is_reachable():
    pb = parse_playbook(default_text(), "default_playbook.yaml")
    names = [r.name for r in pb.rules]
    assert names[0] == "vip_winback" and pb.rules[-1].when is None
    assert {"vip_care", "winback_call", "winback_offer", "onboarding", "self_service"} <= set(names)
    assert all(r.account_manager for r in pb.rules if r.service_level == "vip")
    assert pb.churn_warning is not None
    reach = reachability(pb)
    assert reach.settled and reach.unreachable == []
    for name, witness in reach.witnesses.items():
        assert witness is not None
        rule = pb.first_match(witness)
        assert rule is not None and rule.name == name, (name, witness)


def test_rules_apply_first_match_with_actions_and_sla():
    pb = parse_playbook(SMALL, "small.yaml")
    vip, at_risk, rest = pb.rules
    assert pb.sla_hours == {**DEFAULT_SLA_HOURS, "vip": 2.0}
    assert vip.offer == Offer("percent", 10.0) and vip.account_manager
    assert vip.task == TaskTemplate("vip_call", "vip_desk", None)
    assert at_risk.contact == Contact("phone", 14)
    assert pb.first_match({"value_tier": "high", "churn_probability": 0.9}) is vip
    assert pb.first_match({"value_tier": "low", "churn_probability": 0.9}) is at_risk
    assert pb.first_match({"value_tier": "low", "churn_probability": None}) is rest
    assert pb.due_hours(vip) == 2.0  # from the SLA of its service level
    assert pb.due_hours(at_risk) == 8.0  # its own
    assert pb.due_hours(rest) is None
    assert vip.reason == "vip: tier = 'high'" and rest.reason == "rest: every customer"
    assert vip.line == 4 and rest.line == 15
    assert len(pb.digest) == 12 and pb.digest != parse_playbook(SMALL + "\n# edited\n").digest


BAD = """\
version: 2
service_levels: {vip: -1, gold: 3}
rules:
  - name: Vip
    when: tier = 'high' and clv >> 5
    service_level: platinum
  - name: ok_rule
    when: "segment = 'champion'"
    service_level: standard
    colour: red
    offer: {coupon: 10, percent: 5}
    contact: {channel: fax}
  - name: ok_rule
    service_level: basic
    task: {queue: calls}
  - name: after_all
    when: clv > 0
    service_level: basic
"""


def test_every_bad_entry_is_reported_with_file_line_and_column():
    with pytest.raises(PlaybookError) as caught:
        parse_playbook(BAD, "bad.yaml")
    error = caught.value
    assert isinstance(error, ConfigError)
    found = {(p.line, p.column): p.message for p in error.problems}
    expected = {
        (1, 10): "version 2 is not supported",
        (2, 23): "SLA hours of vip must be a number above 0",
        (2, 27): "unknown key 'gold' in service_levels",
        (4, 11): "rule name 'Vip' must be lower-case",
        (5, 34): "expected a value after >",
        (6, 20): "service_level 'platinum' is not one of vip, standard, basic",
        (8, 22): "'champion' is not a value of segment",
        (10, 5): "unknown key 'colour' in a rule",
        (11, 12): "offer needs exactly one of coupon",
        (12, 14): "contact needs every_days",
        (12, 24): "contact channel 'fax' is not one of",
        (13, 11): "rule 'ok_rule' already defined on line 7",
        (15, 11): "task needs a reason",
        (16, 5): "this rule never applies: the rule on line 13 has no `when`",
    }
    assert set(found) >= set(expected) - {(12, 24)}, sorted(found)
    for position, message in expected.items():
        if position in found:
            assert message in found[position], (position, found[position])
    lines = str(error).splitlines()
    assert len(lines) == len(error.problems)
    assert all(line.startswith("bad.yaml:") for line in lines)
    assert "bad.yaml:5:34: expected a value after >" in str(error)


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ("rules:\n  - name: a\n    when: [tier\n", "4:1", "flow sequence (from line 3, column 11)"),
        ("rules:\n\t- name: a\n", "2:1", "not valid YAML"),
        ("", "1:1", "the playbook is empty"),
        ("- just\n- a list\n", "1:1", "the playbook must be a mapping"),
        ("version: 1\n", "1:1", "the playbook needs a `rules` list"),
        ("rules: []\n", "1:8", "rules must be a non-empty list"),
        ("rules:\n  - name: a\n", "2:5", "rule needs a service_level"),
        (
            "rules:\n  - name: a\n    service_level: vip\n    when: 'clv > '\n",
            "4:18",
            "expected a value after >",
        ),
        ("a: 1\n---\nb: 2\n", "2:1", "not valid YAML"),
        (
            "rules:\n  - name: !!python/name:os.system\n    service_level: vip\n",
            "2:11",
            "rule name: could not determine a constructor",
        ),
        (
            "rules:\n  - service_level: vip\n    name: !!python/object/apply:os.system [ls]\n",
            "3:11",
            "rule name must be a single value",
        ),
    ],
)
def test_malformed_files_give_a_line_numbered_error(text: str, position: str, message: str):
    with pytest.raises(PlaybookError) as caught:
        parse_playbook(text, "p.yaml")
    first = str(caught.value).splitlines()[0]
    assert first.startswith(f"p.yaml:{position}: "), first
    assert message in first


def test_condition_errors_point_into_quoted_and_block_conditions():
    quoted = "rules:\n  - name: a\n    service_level: vip\n    when: 'city = ''x'' and clv > '\n"
    with pytest.raises(PlaybookError) as caught:
        parse_playbook(quoted, "q.yaml")
    # the condition is `city = 'x' and clv > `; its end is the closing quote, column 35
    assert str(caught.value).startswith("q.yaml:4:35: expected a value after >")
    block = (
        "rules:\n  - name: a\n    service_level: vip\n    when: |\n      tier = 'high'\n      and\n"
    )
    with pytest.raises(PlaybookError, match=r"b.yaml:4:11: .*\(character \d+ of the condition\)"):
        parse_playbook(block, "b.yaml")


def test_reachability_proves_a_shadowed_rule_never_applies():
    text = """\
rules:
  - {name: big, when: "clv > 100 or churn_probability >= 0.5", service_level: vip}
  - {name: shadowed, when: "clv > 200 and tier = 'high'", service_level: standard}
  - {name: between, when: "clv > 50 and clv < 100", service_level: standard}
  - {name: boundary, when: "clv = 100", service_level: basic}
"""
    reach = reachability(parse_playbook(text))
    assert reach.settled
    assert reach.unreachable == ["shadowed"]
    assert reach.witnesses["between"]["clv"] == 75.0
    assert reach.witnesses["boundary"]["clv"] == 100.0


def test_reachability_without_a_complete_search_says_so():
    rules = "\n".join(
        f'  - {{name: r{i}, when: "clv = {i} and orders = {i} and profit = {i}", '
        "service_level: basic}"
        for i in range(40)
    )
    text = (
        f'rules:\n{rules}\n  - {{name: never, when: "clv = 0 and clv = 1", service_level: basic}}\n'
    )
    reach = reachability(parse_playbook(text), samples=200, exhaustive_limit=1000)
    assert not reach.settled and "never" in reach.unreachable
