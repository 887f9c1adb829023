"""Every SQL read of the read model, by concern, alike on SQLite and PostgreSQL: orders, reports, positions
(reading your writes), operations (the manual queue, overdue deliveries, alerts), messages (of Alipay's message
service) and gauges. Callers (the API, the CLI, the sweep, the alert sender, the metrics through bootstrap) call
these, never the tables."""

from projections.queries.orders import ORDER_COLUMNS, iter_orders, list_orders, order_row
from projections.queries.positions import position_reached, reached
from projections.queries.reports import DAILY_COLUMNS, TOTALLED, daily_report, report_totals

__all__ = ["DAILY_COLUMNS", "ORDER_COLUMNS", "TOTALLED", "daily_report", "iter_orders", "list_orders", "order_row",
           "position_reached", "reached", "report_totals"]
