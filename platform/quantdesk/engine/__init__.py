"""The trading engine: orders, order manager, portfolio and journal (DESIGN.md section 3)."""
