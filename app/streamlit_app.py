"""The earthvec explorer: ``streamlit run app/streamlit_app.py -- --db DB``.

The entry file only sets up the page and the navigation; each page in ``app/views`` holds
UI code and calls plain modules (``app/logic``, ``index``) for the work. (The folder is not
called ``pages``: Streamlit treats a ``pages/`` folder beside the entry file as a legacy
multipage app, and a first visit to a deep link such as ``/label`` would then run that page
without this file's navigation and page set-up.)
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

HERE = Path(__file__).parent

st.set_page_config(page_title="earthvec explorer", page_icon=":earth_africa:", layout="wide")

pages = [
    st.Page(HERE / "views" / "map_search.py", title="Map & search", icon=":material/travel_explore:",
            default=True),
    st.Page(HERE / "views" / "label.py", title="Label", icon=":material/label:"),
    st.Page(HERE / "views" / "change.py", title="Change", icon=":material/compare:"),
    st.Page(HERE / "views" / "sql.py", title="SQL", icon=":material/database:"),
]
st.navigation(pages).run()
