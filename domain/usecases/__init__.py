"""Use cases: decide with the rules, then effect through the ports."""
