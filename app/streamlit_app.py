"""The earthvec explorer: ``streamlit run app/streamlit_app.py -- --db DB``.

The entry file only sets up the page and the navigation; each page in ``app/pages`` holds
UI code and calls plain modules (``app/logic``, ``index``) for the work.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

HERE = Path(__file__).parent

st.set_page_config(page_title="earthvec explorer", page_icon=":earth_africa:", layout="wide")

pages = [
    st.Page(HERE / "pages" / "map_search.py", title="Map & search", icon=":material/travel_explore:",
            default=True),
    st.Page(HERE / "pages" / "label.py", title="Label", icon=":material/label:"),
    st.Page(HERE / "pages" / "change.py", title="Change", icon=":material/compare:"),
    st.Page(HERE / "pages" / "sql.py", title="SQL", icon=":material/database:"),
]
st.navigation(pages).run()
