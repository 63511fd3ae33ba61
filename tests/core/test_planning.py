"""The tutorial's rule of thumb (subtomograms x tomograms x epochs ~ 100 000) solved per factor."""
import pytest

from isonet2core.training import budget


def test_known_values():
    assert budget.RULE_OF_THUMB_TOTAL == 100_000
    assert budget.subtomos_per_tomogram(10, 50) == 200
    assert budget.epochs_for(10, 200) == 50
    assert budget.subtomos_per_tomogram(3, 50) == 667          # 666.7 rounded
    assert budget.epochs_for(1, 3000) == 33
    assert budget.subtomos_per_tomogram(4, 10, total=1000) == 25


def test_at_least_one():
    assert budget.subtomos_per_tomogram(1000, 1000) == 1
    assert budget.epochs_for(500, 3000) == 1


@pytest.mark.parametrize("n,e", [(1, 1), (2, 50), (7, 13), (40, 100), (3, 333)])
def test_round_trip_product_close_to_total(n, e):
    s = budget.subtomos_per_tomogram(n, e)
    assert abs(s * n * e - budget.RULE_OF_THUMB_TOTAL) <= n * e / 2 + 1e-9
    # solving back for the epochs gives the epochs again when the product is well resolved
    if s >= 10:
        assert budget.epochs_for(n, s) == e


def test_default_is_isonet2s_3000_per_epoch():
    for n in (1, 2, 7, 3001):
        assert budget.default_subtomos_per_tomogram(n) == max(1, 3000 // n)
    assert budget.planned_total(2, None, 10) == 2 * 1500 * 10
    assert budget.planned_total(2, 100, 10) == 2000


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "4"])
def test_invalid(bad):
    with pytest.raises((ValueError, TypeError)):
        budget.subtomos_per_tomogram(bad, 10)
    with pytest.raises((ValueError, TypeError)):
        budget.epochs_for(10, bad)
