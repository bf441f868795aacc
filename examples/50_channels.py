"""The article's section "channels", run live with pyconc.

    pip install .          # once, from the repository root
    python examples/50_channels.py

The code is in pyconc/tour/s50_channels.py: the tour (`python -m pyconc tour`), the
tests (tests/test_article.py) and this script all run the same example.
"""
from pyconc.tour import s50_channels as section

if __name__ == "__main__":
    print(f"== {section.TITLE} ==")
    section.run(print)
