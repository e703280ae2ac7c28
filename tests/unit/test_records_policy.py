"""DecodePolicy: defaults as documented, and bad settings refused with one
clear message."""

from datetime import datetime

import pytest

from worker.errors import ConfigError
from worker.records import DEFAULT_POLICY, DecodePolicy


def test_default_policy_limits():
    assert DEFAULT_POLICY.max_record_bytes == 1024 * 1024
    assert DEFAULT_POLICY.max_future_skew_s == 3600
    assert DEFAULT_POLICY.min_timestamp.isoformat() == "2000-01-01T00:00:00+00:00"
    # A payload of 4,200 circuits must be stored.
    assert DEFAULT_POLICY.max_loads_per_reading >= 4200
    assert DEFAULT_POLICY.max_inflated_bytes >= DEFAULT_POLICY.max_record_bytes
    assert DEFAULT_POLICY.now().tzinfo is not None


def test_policy_is_frozen():
    with pytest.raises(AttributeError):
        DEFAULT_POLICY.max_record_bytes = 1


@pytest.mark.parametrize(("setting", "value"), [
    ("max_record_bytes", 0), ("max_inflated_bytes", -1),
    ("max_loads_per_reading", 2.5), ("max_record_bytes", True),
    ("max_future_skew_s", -1), ("max_future_skew_s", "3600"),
    ("max_future_skew_s", 10**12),
    ("min_timestamp", datetime(2000, 1, 1)),
])
def test_policy_refuses_bad_setting_by_name(setting, value):
    with pytest.raises(ConfigError, match=setting):
        DecodePolicy(**{setting: value})
