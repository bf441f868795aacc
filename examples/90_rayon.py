"""The article's section "rayon", run live with pyconc.

    pip install .          # once, from the repository root
    python examples/90_rayon.py

The code is in pyconc/tour/s90_rayon.py: the tour (`python -m pyconc tour`), the
tests (tests/test_article.py) and this script all run the same example.
"""
from pyconc.tour import s90_rayon as section

if __name__ == "__main__":
    print(f"== {section.TITLE} ==")
    section.run(print)
