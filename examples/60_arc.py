"""The article's section "arc", run live with pyconc.

    pip install .          # once, from the repository root
    python examples/60_arc.py

The code is in pyconc/tour/s60_arc.py: the tour (`python -m pyconc tour`), the
tests (tests/test_article.py) and this script all run the same example.
"""
from pyconc.tour import s60_arc as section

if __name__ == "__main__":
    print(f"== {section.TITLE} ==")
    section.run(print)
