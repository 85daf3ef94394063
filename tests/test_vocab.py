"""Vocabulary labels: codes shared by several enums keep their own names."""

from tierwise.core.vocab import BY_COLUMN, LABELS, ChurnRisk, Segment, Stage, ValueTier, label


def test_every_code_has_both_labels_and_shared_codes_do_not_collide():
    for kind in BY_COLUMN.values():
        for member in kind:
            en, zh = LABELS[kind, member.value]
            assert en and zh and en != zh
    assert Segment.LOYAL.zh == "忠诚客户" and Stage.LOYAL.zh == "忠诚"
    assert ValueTier.LOW.en == "Low value" and ChurnRisk.LOW.en == "Low"
    assert (
        label("rfm_segment", "new", "zh") == "新客户"
        and label("lifecycle_stage", "new", "zh") == "新客"
    )


def test_unknown_codes_and_missing_values_display_plainly():
    assert label("rfm_segment", "my_custom_segment") == "my_custom_segment"
    assert label("rfm_class8", None) == "—"
    assert label("not_a_column", "x", "zh") == "x"
