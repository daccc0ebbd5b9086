"""Analysis: axis transforms, linear trends with bootstrap bands, effective robustness, reports.

The names of the axis transforms live here (not in `transforms`, which imports scipy), so that
front-ends can list them without paying for the import at start-up.
"""

TRANSFORMS = ("probit", "logit", "linear")
