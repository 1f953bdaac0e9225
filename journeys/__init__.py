"""Journey definitions, their steps and enrollment rules, the pure step program
and the journey workflow's contract."""
