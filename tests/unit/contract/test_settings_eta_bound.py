"""The ETA bound (ZIPSCORE_MAX_ETA_SECONDS): zipscore's retries fit under it, and it fits
the visibility timeout, or a message held for its ETA would be handed to a second worker.
"""

from __future__ import annotations

import pytest

from worker.contract.settings import Settings


def test_the_eta_bound_is_the_longest_retry_countdown_and_fits_the_visibility_timeout() -> None:
    defaults = Settings.model_construct()  # the defaults, whatever the test environment says
    assert defaults.max_eta == defaults.retry_countdown == 300
    assert (defaults.max_eta + defaults.task_time_limit) * 2 <= defaults.visibility_timeout_seconds
    assert Settings().max_eta == Settings().retry_countdown


def test_a_bound_below_zipscore_s_own_retries_is_a_settings_error() -> None:
    with pytest.raises(ValueError, match="ZIPSCORE_MAX_ETA_SECONDS must be at least"):
        Settings(max_eta_seconds=10)
    with pytest.raises(ValueError, match="delivered twice"):
        Settings(max_eta_seconds=3_000)
    assert Settings(max_eta_seconds=600).max_eta == 600
