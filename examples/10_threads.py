"""The article's section "threads", run live with pyconc.

    pip install .          # once, from the repository root
    python examples/10_threads.py

The code is in pyconc/tour/s10_threads.py: the tour (`python -m pyconc tour`), the
tests (tests/test_article.py) and this script all run the same example.
"""
from pyconc.tour import s10_threads as section

if __name__ == "__main__":
    print(f"== {section.TITLE} ==")
    section.run(print)
