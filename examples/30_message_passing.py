"""The article's section "message passing", run live with pyconc.

    pip install .          # once, from the repository root
    python examples/30_message_passing.py

The code is in pyconc/tour/s30_message_passing.py: the tour (`python -m pyconc tour`), the
tests (tests/test_article.py) and this script all run the same example.
"""
from pyconc.tour import s30_message_passing as section

if __name__ == "__main__":
    print(f"== {section.TITLE} ==")
    section.run(print)
