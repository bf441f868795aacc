"""The article's section "testing condvar", run live with pyconc.

    pip install .          # once, from the repository root
    python examples/80_testing_condvar.py

The code is in pyconc/tour/s80_testing_condvar.py: the tour (`python -m pyconc tour`), the
tests (tests/test_article.py) and this script all run the same example.
"""
from pyconc.tour import s80_testing_condvar as section

if __name__ == "__main__":
    print(f"== {section.TITLE} ==")
    section.run(print)
