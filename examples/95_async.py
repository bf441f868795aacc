"""The article's section "async", run live with pyconc.

    pip install .          # once, from the repository root
    python examples/95_async.py

The code is in pyconc/tour/s95_async.py: the tour (`python -m pyconc tour`), the
tests (tests/test_article.py) and this script all run the same example.
"""
from pyconc.tour import s95_async as section

if __name__ == "__main__":
    print(f"== {section.TITLE} ==")
    section.run(print)
