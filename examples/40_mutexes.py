"""The article's section "mutexes", run live with pyconc.

    pip install .          # once, from the repository root
    python examples/40_mutexes.py

The code is in pyconc/tour/s40_mutexes.py: the tour (`python -m pyconc tour`), the
tests (tests/test_article.py) and this script all run the same example.
"""
from pyconc.tour import s40_mutexes as section

if __name__ == "__main__":
    print(f"== {section.TITLE} ==")
    section.run(print)
