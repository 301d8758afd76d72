"""Coin selection: factor panels, screens and ranking, point-in-time universes, sklearn models
and rotation backtests. Import the submodules (factors, screens, ranking, universe, models,
rotation); this package imports nothing heavy on its own."""
