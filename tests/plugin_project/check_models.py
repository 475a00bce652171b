import pytest

from models import Good, Tied


def test_good_model_built_in_a_test(trainer_compat):
    report = trainer_compat.assert_compatible(Good(), args={"save_strategy": "steps"})
    assert report.compatible


def test_tied_model_fails_the_helper(trainer_compat):
    with pytest.raises(AssertionError, match="TC301"):
        trainer_compat.assert_compatible(Tied(), args={"save_strategy": "steps"})
