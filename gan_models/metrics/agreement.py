"""Whether a conditional generator draws what it was asked for: the label (``label_agreement``,
the classifier's reading of each sample against the class requested) and each measured attribute
of a multi-input variant (``attr_r_<name>``: Pearson r of the attribute measured on the samples
against the value asked for; the evaluate stage computes them)."""

from __future__ import annotations

from ..data.attributes import ATTRIBUTES
from .base import score

score("label_agreement", "label obeyed", "higher", ".1%",
      description="a conditional G's samples classified as the class they were asked for")
for _name in ATTRIBUTES.names():
    score(f"attr_r_{_name}", f"{_name} r", "higher", ".2f",
          description=f"Pearson r of the {_name} measured on the samples against the value asked for")
    score(f"attr_r_{_name}_within_class", f"{_name} r (within class)", "higher", ".2f", table=False)
    score(f"attr_mae_{_name}", f"{_name} MAE", "lower", ".3g", table=False)
