"""The article's section "shared ownership", run live with pyconc.

    pip install .          # once, from the repository root
    python examples/20_shared_ownership.py

The code is in pyconc/tour/s20_shared_ownership.py: the tour (`python -m pyconc tour`), the
tests (tests/test_article.py) and this script all run the same example.
"""
from pyconc.tour import s20_shared_ownership as section

if __name__ == "__main__":
    print(f"== {section.TITLE} ==")
    section.run(print)
