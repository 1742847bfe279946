"""One module per schema revision (``0001_initial.py``, ``0002_….py``, …); see ../README.md."""
