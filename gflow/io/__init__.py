"""File output: PNG grids."""
