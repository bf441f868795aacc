"""The article's section "error handling", run live with pyconc.

    pip install .          # once, from the repository root
    python examples/70_error_handling.py

The code is in pyconc/tour/s70_error_handling.py: the tour (`python -m pyconc tour`), the
tests (tests/test_article.py) and this script all run the same example.
"""
from pyconc.tour import s70_error_handling as section

if __name__ == "__main__":
    print(f"== {section.TITLE} ==")
    section.run(print)
