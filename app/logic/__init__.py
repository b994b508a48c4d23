"""Explorer logic that is plain Python (no Streamlit): colours, map layers, thumbnails."""
