"""`quantdesk approve`: release (or reject) orders a confirm-mode engine holds in its journal."""

from __future__ import annotations

import time
from pathlib import Path

import click

from quantdesk.cli import cli
from quantdesk.cli.output import console, print_table
from quantdesk.errors import QuantdeskError


@cli.command()
@click.argument("order_ids", nargs=-1)
@click.option(
    "--journal",
    "journal_path",
    type=click.Path(dir_okay=False),
    required=True,
    help="The engine's journal (SQLite file or SQLAlchemy URL).",
)
@click.option("--reject", is_flag=True, help="Withdraw the orders instead of sending them.")
@click.option("--list", "list_only", is_flag=True, help="List orders awaiting approval.")
def approve(order_ids: tuple[str, ...], journal_path: str, reject: bool, list_only: bool) -> None:
    """Approve (or --reject) orders awaiting approval, by client order id; the engine sends
    approved orders on its next step. --list shows what waits."""
    from quantdesk.engine.journal import Journal

    if "://" not in journal_path and not Path(journal_path).is_file():
        raise QuantdeskError(f"no journal at {journal_path}")
    with Journal(journal_path) as journal:
        waiting = awaiting_approval(journal)
        if list_only or not order_ids:
            rows = [
                (r["client_order_id"], r["strategy_id"], r["symbol"], r["side"], str(r["amount"]))
                for r in waiting
            ]
            print_table(
                ["client order id", "strategy", "symbol", "side", "amount"],
                rows,
                title=f"{len(rows)} order(s) awaiting approval",
            )
            return
        known = {r["client_order_id"] for r in waiting}
        unknown = [o for o in order_ids if o not in known]
        if unknown:
            raise QuantdeskError(f"order {unknown[0]} is not awaiting approval")
        kind = "reject" if reject else "approve"
        now = time.time_ns() // 1_000_000
        for order_id in order_ids:
            command = journal.add_command(kind, now, target=order_id)
            console().print(f"{kind} {order_id}: command {command} queued")


def awaiting_approval(journal: object) -> list[dict]:
    """Orders a confirm-mode engine holds: pending, reason 'awaiting approval', no command yet."""
    orders = journal.orders()  # type: ignore[attr-defined]
    if orders.empty:
        return []
    held = orders[(orders["status"] == "pending") & (orders["reason"] == "awaiting approval")]
    queued = {c.target for c in journal.pending_commands()}  # type: ignore[attr-defined]
    return [r for r in held.to_dict("records") if r["client_order_id"] not in queued]
