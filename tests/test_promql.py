"""What ``tests.promql.metric_names`` reads out of PromQL (the deploy tests rely on it)."""

from __future__ import annotations

import pytest

from tests.promql import metric_names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("sum by (topic) (rate(fleetscope_messages_in_total[$__rate_interval]))", {"fleetscope_messages_in_total"}),
        (
            'histogram_quantile(0.99, sum by (model, le) (rate(a_seconds_bucket{model=~"st.*", x="y(z)"}[5m])))',
            {"a_seconds_bucket"},
        ),
        (
            "sum(rate(a_sum[1m])) by (m) / on (m) group_left (k) sum(rate(b_count[1m] offset 5m)) by (m)",
            {"a_sum", "b_count"},
        ),
        ("up == bool 1 and on() vector(1) or absent(c_total) unless d:recorded", {"up", "c_total", "d:recorded"}),
        ("max_over_time(e[1h:5m]) > 1e3 * 2", {"e"}),
        ('label_replace(f, "dst", "$1", "src", "(.*)")', {"f"}),
        (
            'sum by (job, le) (rate(a_bucket{x="y{z}"}[5m])) > 1 and on (instance) b offset 15m unless c{q="r"}'
            " or histogram_quantile(0.99, d)",
            {"a_bucket", "b", "c", "d"},
        ),
    ],
)
def test_metric_names_are_the_selectors_of_an_expression(expr, names):
    assert metric_names(expr) == names
