"""Analysis: axis transforms, linear trends of OOD on ID, bootstrap bands, effective robustness."""
