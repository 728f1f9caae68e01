"""Judging a result: the fitness formula, one result's score fields, rescoring a whole campaign."""
