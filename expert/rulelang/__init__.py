"""Stage 5: the rule language. Vocabulary, the candidate fact, conditions, loading, the durable engine."""

from .load import ACTIONS, FACTORS, Action, Rule, RuleSet, check_sources, load_rules
from .vocabulary import FACT_FIELDS, get_path, sample_fact

__all__ = ["ACTIONS", "FACTORS", "FACT_FIELDS", "Action", "Rule", "RuleSet", "check_sources", "get_path",
           "load_rules", "sample_fact"]
