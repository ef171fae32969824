"""Stage 7: decide. Rank the candidates the rules left standing and build the view model."""
