"""Execution algorithms and order routing any strategy can use.

books (a venue's L2 book with its taker fee), routing (best venue net of fees, a slippage cap,
splitting across venues by depth) and algos (TWAP, VWAP from a volume profile, iceberg: each a
schedule of child orders whose state serializes for the journal, so a restart resumes or
cancels the rest and never sends a child twice).
"""
